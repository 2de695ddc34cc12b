"""The training loop shared by supervised and weakly supervised training.

AdamW with a one-cycle schedule, shuffled mini-batches, validation Dice after every epoch, the best weights
saved as ``model.pt``, early stopping, an atomic ``checkpoint.pt`` after every epoch (``resume`` continues
after the last completed one), a ``log.jsonl`` record per epoch, and at the end post-processing chosen on the
validation cases and ``metrics.json``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from frugalseg.atomic import append_jsonl, atomic_torch_save, atomic_write_json, load_torch_file
from frugalseg.data.case import Case
from frugalseg.engine.config import TrainConfig
from frugalseg.engine.evaluate import evaluate_model
from frugalseg.engine.inference import MODEL_FILE, SegmentationModel
from frugalseg.engine.postprocess import choose_postprocess
from frugalseg.errors import InputError
from frugalseg.metrics import batch_dice, dice_score
from frugalseg.optim import one_cycle, optimiser_step

__all__ = ["CHECKPOINT_FILE", "BatchLoss", "ProgressCallback", "TrainResult", "finish_run", "fit_epochs"]

CHECKPOINT_FILE = "checkpoint.pt"
ProgressCallback = Callable[[dict[str, Any]], None]
BatchLoss = Callable[[torch.Tensor, torch.Generator, int], torch.Tensor]
"""``(indices of the batch's images, generator for augmentation, epoch) -> scalar loss``."""


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    best_val_dice: float
    epochs_run: int
    seconds: float


def fit_epochs(
    run_dir: Path,
    model: SegmentationModel,
    config: TrainConfig,
    *,
    num_images: int,
    batch_loss: BatchLoss,
    validation: tuple[torch.Tensor, torch.Tensor] | None,
    seed: int,
    resume: bool,
    progress: ProgressCallback | None,
    log_fields: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``model.network`` for ``config.epochs`` epochs (or until early stopping) into ``run_dir``.

    Args:
        run_dir: receives ``model.pt`` (best validation Dice; the last epoch without validation),
            ``checkpoint.pt`` and ``log.jsonl``.
        model: the inference bundle around the network being trained.
        config: schedule (epochs, batch size, lr, weight decay, patience, minimum steps per epoch).
        num_images: training images; every epoch draws batches from a fresh permutation of them.
        batch_loss: the loss of one batch.
        validation: ``(images (N, C, S, S), labels (N, S, S))`` for model selection, or ``None``.
        seed: seed of the batch order and augmentation.
        resume: continue from ``checkpoint.pt`` when it exists.
        progress: called after every epoch with the log record plus ``epochs``.
        log_fields: extra fields of every log record (e.g. the refinement round).

    Returns:
        The final state ``{"epoch", "best_dice", "stale"}`` (``best_dice`` is -1 without validation).
    """
    network = model.network
    steps_per_epoch = max(config.min_steps_per_epoch, num_images // config.batch_size)
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, one_cycle(config.epochs * steps_per_epoch))
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, Any] = {"epoch": 0, "best_dice": -1.0, "stale": 0}
    checkpoint_path = run_dir / CHECKPOINT_FILE
    if resume and checkpoint_path.exists():
        state = _load_checkpoint(checkpoint_path, network, optimizer, scheduler, generator)

    def stop_early() -> bool:
        return bool(config.patience) and validation is not None and state["stale"] >= config.patience

    while state["epoch"] < config.epochs and not stop_early():
        epoch_started = time.perf_counter()
        train_loss = _train_epoch(
            network,
            optimizer,
            scheduler,
            generator,
            batch_loss,
            num_images,
            config.batch_size,
            steps_per_epoch,
            epoch=state["epoch"],
        )
        val_dice = math.nan if validation is None else _validation_dice(model, *validation)
        state["epoch"] += 1
        improved = validation is None or val_dice > state["best_dice"]
        state["stale"] = 0 if improved else state["stale"] + 1
        if improved:
            state["best_dice"] = -1.0 if validation is None else val_dice
            atomic_torch_save(run_dir / MODEL_FILE, model.bundle())
        _save_checkpoint(checkpoint_path, network, optimizer, scheduler, generator, state)
        record = {
            "epoch": state["epoch"],
            **(log_fields or {}),
            "train_loss": train_loss,
            "val_dice": val_dice,
            "best_val_dice": math.nan if validation is None else state["best_dice"],
            "lr": scheduler.get_last_lr()[0],
            "seconds": time.perf_counter() - epoch_started,
        }
        append_jsonl(run_dir / "log.jsonl", record)
        if progress is not None:
            progress({**record, "epochs": config.epochs})
    return state


def finish_run(
    run_dir: Path,
    state: Mapping[str, Any],
    val_cases: Sequence[Case],
    *,
    device: str,
    started: float,
    metrics_fields: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Choose post-processing on ``val_cases`` for the best model, evaluate it, write ``metrics.json``.

    Without validation cases the model keeps no post-processing and the validation report is empty.
    """
    best = SegmentationModel.load(run_dir).to(device)
    val_report: dict[str, Any] = {}
    if val_cases:
        best.postprocess = _choose_postprocess(best, val_cases)
        atomic_torch_save(run_dir / MODEL_FILE, best.bundle())
        val_report = {k: v for k, v in evaluate_model(best, val_cases).items() if k != "cases"}
    seconds = time.perf_counter() - started
    atomic_write_json(
        run_dir / "metrics.json",
        {"val": val_report, "epochs_run": state["epoch"], "train_seconds": seconds, **(metrics_fields or {})},
    )
    return TrainResult(
        run_dir=run_dir, best_val_dice=float(state["best_dice"]), epochs_run=int(state["epoch"]), seconds=seconds
    )


def _train_epoch(
    network: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
    batch_loss: BatchLoss,
    num_images: int,
    batch_size: int,
    steps: int,
    *,
    epoch: int,
) -> float:
    network.train()
    needed = steps * batch_size
    order = torch.cat([torch.randperm(num_images, generator=generator) for _ in range(-(-needed // num_images))])
    losses = []
    for step in range(steps):
        loss = batch_loss(order[step * batch_size : (step + 1) * batch_size], generator, epoch)
        losses.append(optimiser_step(loss, optimizer, scheduler, what=f"training (epoch {epoch + 1})", step=step))
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
