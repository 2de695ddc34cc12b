"""Supervised training: CE + Dice, augmentation, validation by subject, early stopping, atomic checkpoints, resume.

A run directory holds ``config.json``, ``split.json``, ``model.pt`` (best validation weights and everything
needed for inference), ``checkpoint.pt`` (last epoch, for ``resume``), ``log.jsonl`` and ``metrics.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from frugalseg.atomic import atomic_write_json
from frugalseg.data.case import Case, Dataset
from frugalseg.data.splits import split_by_subject
from frugalseg.engine.augment import augment_batch
from frugalseg.engine.config import TrainConfig, load_config
from frugalseg.engine.fit import ProgressCallback, TrainResult, finish_run, fit_epochs
from frugalseg.engine.inference import SegmentationModel
from frugalseg.engine.preprocess import stack_cases
from frugalseg.errors import InputError
from frugalseg.losses import dice_ce_loss
from frugalseg.models import create_model, has_pretrained_weights

__all__ = ["model_kwargs", "read_log", "train", "training_cases", "validation_split"]


def training_cases(dataset: Dataset) -> list[Case]:
    """Labelled cases outside the dataset's own test split."""
    cases = [case for case in dataset.cases if case.label is not None and case.split != "test"]
    if len(cases) < 2:
        raise InputError(
            f"{dataset.root or dataset.source_format}: need at least 2 labelled training cases, found {len(cases)}"
        )
    return cases


def train(
    dataset: Dataset,
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    device: str = "cpu",
    progress: ProgressCallback | None = None,
) -> TrainResult:
    """Train ``config.model`` on the labelled training cases of ``dataset`` into ``run_dir``.

    ``device`` selects where the network trains (``"cuda"`` when present and asked for); results are saved
    for the CPU. With ``resume`` the saved configuration and last checkpoint are used and training continues after the
    last completed epoch; a run directory without a checkpoint restarts from the first epoch.
    """
    run_dir = Path(run_dir)
    config = _prepare_run_dir(run_dir, config, resume=resume)
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    cases = training_cases(dataset)
    fit_cases, val_cases = validation_split(cases, config)
    atomic_write_json(
        run_dir / "split.json",
        {"train": [c.case_id for c in fit_cases], "val": [c.case_id for c in val_cases]},
    )
    in_channels = max(case.channels for case in dataset.cases)
    num_classes = dataset.num_classes
    images, labels = stack_cases(fit_cases, size=config.size, in_channels=in_channels, num_classes=num_classes)
    val_images, val_labels = stack_cases(val_cases, size=config.size, in_channels=in_channels, num_classes=num_classes)

    network = create_model(config.model, in_channels=in_channels, num_classes=num_classes, **model_kwargs(config))
    network.to(device)
    model = SegmentationModel(
        network=network,
        model_name=config.model,
        size=config.size,
        in_channels=in_channels,
        class_names=list(dataset.class_names),
        flip_tta=config.flip_tta,
    )

    def batch_loss(index: torch.Tensor, generator: torch.Generator, epoch: int) -> torch.Tensor:
        batch, target = images[index], labels[index]
        if config.augment:
            batch, target = augment_batch(batch, target, generator=generator)
        return dice_ce_loss(network(batch.to(device)), target.to(device))

    state = fit_epochs(
        run_dir,
        model,
        config,
        num_images=len(fit_cases),
        batch_loss=batch_loss,
        validation=(val_images, val_labels),
        seed=config.seed,
        resume=resume,
        progress=progress,
    )
    return finish_run(run_dir, state, val_cases, device=device, started=started)


def _prepare_run_dir(run_dir: Path, config: TrainConfig, *, resume: bool) -> TrainConfig:
    config_path = run_dir / "config.json"
    if resume:
        if not config_path.exists():
            raise InputError(f"{run_dir}: nothing to resume (no config.json); start a new run without --resume")
        return load_config(config_path)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise InputError(f"{run_dir}: already holds files; pass --resume to continue that run or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(config_path, config.to_dict())
    return config


def model_kwargs(config: TrainConfig) -> dict[str, Any]:
    """``pretrained=True`` for models that have pretrained weights; other models start from scratch."""
    return {"pretrained": True} if config.pretrained and has_pretrained_weights(config.model) else {}


def validation_split(cases: Sequence[Case], config: TrainConfig) -> tuple[list[Case], list[Case]]:
    """``(fit, validation)`` cases split by subject; with ``val_fraction == 0`` every case is in both."""
    if config.val_fraction == 0:
        return list(cases), list(cases)
    return split_by_subject(cases, holdout_fraction=config.val_fraction, seed=config.seed)


def read_log(run_dir: str | Path) -> list[dict[str, Any]]:
    """Records of ``log.jsonl``, skipping a torn last line."""
    records = []
    for line in (Path(run_dir) / "log.jsonl").read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
