"""Supervised training: CE + Dice, augmentation, validation by subject, early stopping, atomic checkpoints, resume.

A run directory holds ``config.json``, ``split.json``, ``model.pt`` (best validation weights and everything
needed for inference), ``checkpoint.pt`` (last epoch, for ``resume``), ``log.jsonl`` and ``metrics.json``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from frugalseg.atomic import append_jsonl, atomic_torch_save, atomic_write_json, load_torch_file
from frugalseg.data.case import Case, Dataset
from frugalseg.data.splits import split_by_subject
from frugalseg.engine.augment import augment_batch
from frugalseg.engine.config import TrainConfig, load_config
from frugalseg.engine.evaluate import evaluate_model
from frugalseg.engine.inference import MODEL_FILE, SegmentationModel
from frugalseg.engine.postprocess import choose_postprocess
from frugalseg.engine.preprocess import stack_cases
from frugalseg.errors import InputError
from frugalseg.losses import dice_ce_loss
from frugalseg.metrics import batch_dice, dice_score
from frugalseg.models import create_model, has_pretrained_weights

__all__ = ["TrainResult", "train", "training_cases"]

CHECKPOINT_FILE = "checkpoint.pt"
ProgressCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    best_val_dice: float
    epochs_run: int
    seconds: float


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
    fit_cases, val_cases = _split(cases, config)
    atomic_write_json(
        run_dir / "split.json",
        {"train": [c.case_id for c in fit_cases], "val": [c.case_id for c in val_cases]},
    )
    in_channels = max(case.channels for case in dataset.cases)
    num_classes = dataset.num_classes
    images, labels = stack_cases(fit_cases, size=config.size, in_channels=in_channels, num_classes=num_classes)
    val_images, val_labels = stack_cases(val_cases, size=config.size, in_channels=in_channels, num_classes=num_classes)

    network = create_model(config.model, in_channels=in_channels, num_classes=num_classes, **_model_kwargs(config))
    network.to(device)
    model = SegmentationModel(
        network=network,
        model_name=config.model,
        size=config.size,
        in_channels=in_channels,
        class_names=list(dataset.class_names),
        flip_tta=config.flip_tta,
    )
    steps_per_epoch = max(config.min_steps_per_epoch, len(fit_cases) // config.batch_size)
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, one_cycle(config.epochs * steps_per_epoch))
    generator = torch.Generator().manual_seed(config.seed)
    state = {"epoch": 0, "best_dice": -1.0, "stale": 0}
    checkpoint_path = run_dir / CHECKPOINT_FILE
    if resume and checkpoint_path.exists():
        state = _load_checkpoint(checkpoint_path, network, optimizer, scheduler, generator)

    while state["epoch"] < config.epochs and not (config.patience and state["stale"] >= config.patience):
        epoch_started = time.perf_counter()
        train_loss = _train_epoch(network, optimizer, scheduler, images, labels, config, generator, steps_per_epoch)
        val_dice = _validation_dice(model, val_images, val_labels)
        state["epoch"] += 1
        improved = val_dice > state["best_dice"]
        state["stale"] = 0 if improved else state["stale"] + 1
        if improved:
            state["best_dice"] = val_dice
            atomic_torch_save(run_dir / MODEL_FILE, model.bundle())
        _save_checkpoint(checkpoint_path, network, optimizer, scheduler, generator, state)
        record = {
            "epoch": state["epoch"],
            "train_loss": train_loss,
            "val_dice": val_dice,
            "best_val_dice": state["best_dice"],
            "lr": scheduler.get_last_lr()[0],
            "seconds": time.perf_counter() - epoch_started,
        }
        append_jsonl(run_dir / "log.jsonl", record)
        if progress is not None:
            progress({**record, "epochs": config.epochs})

    best = SegmentationModel.load(run_dir).to(device)
    best.postprocess = _choose_postprocess(best, val_cases)
    atomic_torch_save(run_dir / MODEL_FILE, best.bundle())
    val_report = evaluate_model(best, val_cases)
    seconds = time.perf_counter() - started
    atomic_write_json(
        run_dir / "metrics.json",
        {
            "val": {k: v for k, v in val_report.items() if k != "cases"},
            "epochs_run": state["epoch"],
            "train_seconds": seconds,
        },
    )
    return TrainResult(
        run_dir=run_dir,
        best_val_dice=float(state["best_dice"]),
        epochs_run=int(state["epoch"]),
        seconds=seconds,
    )


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


def _model_kwargs(config: TrainConfig) -> dict[str, Any]:
    """``pretrained=True`` for models that have pretrained weights; other models start from scratch."""
    return {"pretrained": True} if config.pretrained and has_pretrained_weights(config.model) else {}


def _split(cases: Sequence[Case], config: TrainConfig) -> tuple[list[Case], list[Case]]:
    if config.val_fraction == 0:
        return list(cases), list(cases)
    return split_by_subject(cases, holdout_fraction=config.val_fraction, seed=config.seed)


def one_cycle(total_steps: int, warmup_fraction: float = 0.05) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to 1% of the peak learning rate."""
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _train_epoch(
    network: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: TrainConfig,
    generator: torch.Generator,
    steps_per_epoch: int,
) -> float:
    network.train()
    needed = steps_per_epoch * config.batch_size
    order = torch.cat([torch.randperm(len(images), generator=generator) for _ in range(-(-needed // len(images)))])
    losses = []
    for step in range(steps_per_epoch):
        index = order[step * config.batch_size : (step + 1) * config.batch_size]
        batch, target = images[index], labels[index]
        if config.augment:
            batch, target = augment_batch(batch, target, generator=generator)
        device = next(network.parameters()).device
        loss = dice_ce_loss(network(batch.to(device)), target.to(device))
        if not torch.isfinite(loss):
            raise InputError(f"training diverged: non-finite loss at step {step}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses))


def _validation_dice(model: SegmentationModel, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean foreground Dice at the network's input size (a fast proxy for model selection)."""
    predictions = torch.cat(
        [model.network_probabilities(images[i : i + 32]).argmax(1) for i in range(0, len(images), 32)]
    )
    dice = batch_dice(predictions, labels, num_classes=model.num_classes)
    return float(dice.nanmean())


def _choose_postprocess(model: SegmentationModel, val_cases: Sequence[Case]) -> dict[int, str]:
    """Per-class post-processing that maximises validation Dice at the original resolution."""
    probabilities = model.predict_probabilities([case.image for case in val_cases])
    predictions = [model.labels_from_probabilities(p, clean=False) for p in probabilities]
    truths = [case.label for case in val_cases if case.label is not None]
    return choose_postprocess(predictions, truths, num_classes=model.num_classes, score=dice_score)


def _save_checkpoint(
    path: Path,
    network: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generator: torch.Generator,
    state: dict[str, Any],
) -> None:
    atomic_torch_save(
        path,
        {
            "network": network.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "generator": generator.get_state(),
            "state": state,
        },
    )


def _load_checkpoint(
    path: Path,
    network: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generator: torch.Generator,
) -> dict[str, Any]:
    checkpoint = load_torch_file(path, what="a training checkpoint; delete it to restart the run from scratch")
    try:
        network.load_state_dict(checkpoint["network"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        generator.set_state(checkpoint["generator"])
        return dict(checkpoint["state"])
    except (RuntimeError, KeyError, EOFError, ValueError) as error:
        raise InputError(f"{path}: corrupt checkpoint ({error}); delete it to restart the run from scratch") from error


def read_log(run_dir: str | Path) -> list[dict[str, Any]]:
    """Records of ``log.jsonl``, skipping a torn last line."""
    records = []
    for line in (Path(run_dir) / "log.jsonl").read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
