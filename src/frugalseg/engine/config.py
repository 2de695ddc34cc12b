"""Frozen training configuration, saved as ``config.json`` beside every run."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frugalseg.errors import InputError

__all__ = ["SCHEMA_VERSION", "TrainConfig", "load_config"]

SCHEMA_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that decides a training run (variants via ``dataclasses.replace``).

    Attributes:
        model: registered model name (``frugalseg.models.list_models()``).
        size: square side, in pixels, images are resized to for training and inference.
        epochs: number of epochs (the learning-rate schedule spans them all).
        batch_size: images per optimisation step.
        min_steps_per_epoch: an epoch is one pass over the training cases but at least this many steps
            (cases are re-drawn), so small datasets still get a useful schedule (as nnU-Net fixes its
            epoch length).
        lr: peak learning rate of AdamW (one-cycle schedule: warm-up then cosine decay).
        weight_decay: AdamW weight decay.
        val_fraction: fraction of subjects held out for validation / early stopping / post-processing choice.
        patience: epochs without validation improvement before stopping (0, the default, disables early
            stopping: the cosine schedule is short and the best validation epoch is kept anyway).
        augment: random affine, flips and intensity changes during training.
        flip_tta: average predictions over a horizontal flip at inference.
        pretrained: start the encoder from cached ImageNet weights (``frugalseg weights fetch effl0``);
            ignored by models without pretrained weights.
        seed: seeds the split, initialisation, sampling and augmentation.
    """

    model: str = "unet_effl0"
    size: int = 128
    epochs: int = 12
    batch_size: int = 16
    min_steps_per_epoch: int = 25
    lr: float = 3e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.1
    patience: int = 0
    augment: bool = True
    flip_tta: bool = True
    pretrained: bool = True
    seed: int = 0
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        checks = {
            "size": self.size >= 16,
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "min_steps_per_epoch": self.min_steps_per_epoch >= 1,
            "lr": self.lr > 0,
            "val_fraction": 0.0 <= self.val_fraction < 1.0,
            "patience": self.patience >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise InputError(f"invalid training setting {name}={getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | Path) -> TrainConfig:
    """Read a ``config.json`` written by a run, refusing unknown schema versions or fields."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: cannot read the run configuration ({error})") from error
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise InputError(f"{path}: schema version {raw.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    known = {field.name for field in dataclasses.fields(TrainConfig)}
    unknown = set(raw) - known
    if unknown:
        raise InputError(f"{path}: unknown configuration fields {sorted(unknown)}")
    return TrainConfig(**raw)
