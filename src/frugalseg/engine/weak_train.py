"""Training from weak labels: boxes, points, scribbles, tags, partial labels or pseudo-label folders.

The run directory is a supervised run directory plus ``weak_config.json``: ``config.json`` (the
:class:`~frugalseg.engine.config.TrainConfig`), ``split.json``, ``model.pt`` (a
:class:`~frugalseg.engine.inference.SegmentationModel` bundle, so ``frugalseg evaluate`` / ``predict`` work
unchanged), ``checkpoint.pt`` (resume), ``log.jsonl`` and ``metrics.json``. Tag runs refine their pseudo-masks
``refine_rounds`` times; each earlier round is a complete run in ``round<k>/`` inside the run directory.

The loop mirrors :func:`frugalseg.engine.train.train`: the same subject split (``val_fraction``, ``seed``),
one-cycle schedule, AdamW, checkpoints and resume (helpers imported from :mod:`frugalseg.engine.train`), and
model selection by the Dice of the validation cases' FULL masks when they have some (otherwise the last
epoch is kept). Only the targets (:mod:`~frugalseg.engine.weak_labels`) and the loss
(:mod:`~frugalseg.engine.weak_losses`) differ.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from frugalseg.atomic import append_jsonl, atomic_torch_save, atomic_write_json
from frugalseg.data.case import IGNORE, Case, Dataset
from frugalseg.data.splits import split_by_subject
from frugalseg.engine.config import TrainConfig, load_config
from frugalseg.engine.evaluate import evaluate_model
from frugalseg.engine.inference import MODEL_FILE, SegmentationModel
from frugalseg.engine.preprocess import image_to_tensor, stack_cases
from frugalseg.engine.train import (
    CHECKPOINT_FILE,
    ProgressCallback,
    TrainResult,
    _choose_postprocess,
    _load_checkpoint,
    _model_kwargs,
    _save_checkpoint,
    _validation_dice,
    one_cycle,
)
from frugalseg.engine.weak_config import WeakConfig, load_weak_config
from frugalseg.engine.weak_labels import WeakAnnotation, build_weak_targets, weak_annotations
from frugalseg.engine.weak_losses import weak_loss
from frugalseg.engine.weak_targets import WeakTargets, make_batch
from frugalseg.errors import InputError
from frugalseg.models import create_model
from frugalseg.pseudolabels import labels_from_probabilities, refine_pseudo_labels

__all__ = ["WEAK_CONFIG_FILE", "train_weak", "weak_split"]

WEAK_CONFIG_FILE = "weak_config.json"


@dataclasses.dataclass(frozen=True)
class _Data:
    """Everything one training round reads."""

    images: torch.Tensor
    targets: WeakTargets
    val_cases: list[Case]
    val_images: torch.Tensor | None
    val_labels: torch.Tensor | None
    in_channels: int
    class_names: list[str]


def weak_split(dataset: Dataset, config: TrainConfig) -> tuple[list[Case], list[Case]]:
    """``(fit, validation)`` cases: the non-test cases split by subject as :func:`~frugalseg.engine.train.train` does.

    With ``val_fraction == 0`` every case is also a validation case. Only validation cases with a full mask
    are used for model selection.
    """
    cases = [case for case in dataset.cases if case.split != "test"]
    if config.val_fraction == 0:
        return cases, list(cases)
    return split_by_subject(cases, holdout_fraction=config.val_fraction, seed=config.seed)


def train_weak(
    dataset: Dataset,
    config: TrainConfig,
    weak: WeakConfig,
    run_dir: str | Path,
    *,
    annotations: Mapping[str, WeakAnnotation] | None = None,
    resume: bool = False,
    device: str = "cpu",
    progress: ProgressCallback | None = None,
) -> TrainResult:
    """Train ``config.model`` from the weak labels ``weak`` describes into ``run_dir``.

    Args:
        dataset: the cases; their full masks are only read to simulate annotations (``weak.source ==
            "simulate"``), for ``labels == "full"``, and on validation cases for model selection.
        config: model, size and schedule (saved as ``config.json``).
        weak: kind, method, source and loss weights (saved as ``weak_config.json``).
        run_dir: the run directory to create (or to continue with ``resume``).
        annotations: ``{case_id: annotation}`` to use instead of ``weak.source`` (e.g. already read or
            simulated by the caller); cases without one are not fitted.
        resume: continue the run in ``run_dir`` with its saved configurations.
        device: where the networks train.
        progress: called after every epoch with the log record (plus ``epochs`` and ``round``).

    Returns:
        The :class:`~frugalseg.engine.train.TrainResult` of the final round.

    Raises:
        InputError: a bad run directory, no annotated training case, or annotations that do not fit.
    """
    run_dir = Path(run_dir)
    config, weak = _prepare_run_dir(run_dir, config, weak, resume=resume)
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    fit_pool, val_pool = weak_split(dataset, config)
    if annotations is None:
        annotations = weak_annotations(fit_pool, weak, num_classes=dataset.num_classes, seed=config.seed)
    if weak.labels == "full":
        fit_cases = [case for case in fit_pool if case.label is not None]
    else:
        fit_cases = [case for case in fit_pool if case.case_id in annotations]
    if not fit_cases:
        raise InputError(
            f"{dataset.root or dataset.source_format}: no training case has {weak.labels} annotations "
            f"(source {weak.source!r})"
        )
    val_cases = [case for case in val_pool if case.label is not None]
    atomic_write_json(
        run_dir / "split.json",
        {"train": [c.case_id for c in fit_cases], "val": [c.case_id for c in val_cases]},
    )
    in_channels = max(case.channels for case in dataset.cases)
    images = torch.stack([image_to_tensor(c.image, size=config.size, in_channels=in_channels) for c in fit_cases])
    targets = build_weak_targets(
        fit_cases,
        annotations,
        images,
        weak=weak,
        num_classes=dataset.num_classes,
        seed=config.seed,
        batch_size=config.batch_size,
        device=device,
    )
    val_images, val_labels = None, None
    if val_cases:
        val_images, val_labels = stack_cases(
            val_cases, size=config.size, in_channels=in_channels, num_classes=dataset.num_classes
        )
    data = _Data(images, targets, val_cases, val_images, val_labels, in_channels, list(dataset.class_names))
    if weak.labels != "tags" or weak.refine_rounds == 0:
        return _fit(run_dir, data, config, weak, resume=resume, device=device, progress=progress, started=started)

    rounds = weak.refine_rounds

    def fit(current: WeakTargets, round_index: int) -> TrainResult:
        folder = run_dir if round_index == rounds else run_dir / f"round{round_index}"
        round_data = dataclasses.replace(data, targets=current)
        return _fit(
            folder,
            round_data,
            config,
            weak,
            resume=resume,
            device=device,
            progress=progress,
            started=started,
            round_index=round_index,
        )

    def estimate(result: TrainResult, round_index: int) -> WeakTargets:
        model = SegmentationModel.load(result.run_dir).to(device)
        probabilities = torch.cat([model.network_probabilities(images[i : i + 32]) for i in range(0, len(images), 32)])
        label, confidence = labels_from_probabilities(
            probabilities, allowed=targets.tags, min_confidence=weak.refine_confidence
        )
        weight = confidence if weak.confidence_weighting else torch.ones_like(confidence)
        weight = torch.where(label == IGNORE, torch.zeros_like(weight), weight)
        return dataclasses.replace(targets, label=label, weight=weight)

    result, _ = refine_pseudo_labels(targets, fit=fit, estimate=estimate, rounds=rounds)
    return result


def _prepare_run_dir(
    run_dir: Path, config: TrainConfig, weak: WeakConfig, *, resume: bool
) -> tuple[TrainConfig, WeakConfig]:
    config_path, weak_path = run_dir / "config.json", run_dir / WEAK_CONFIG_FILE
    if resume:
        if not config_path.exists() or not weak_path.exists():
            raise InputError(
                f"{run_dir}: nothing to resume (no config.json and {WEAK_CONFIG_FILE}); "
                "start a new run without --resume"
            )
        return load_config(config_path), load_weak_config(weak_path)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise InputError(f"{run_dir}: already holds files; pass --resume to continue that run or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(config_path, config.to_dict())
    atomic_write_json(weak_path, weak.to_dict())
    return config, weak


def _fit(
    run_dir: Path,
    data: _Data,
    config: TrainConfig,
    weak: WeakConfig,
    *,
    resume: bool,
    device: str,
    progress: ProgressCallback | None,
    started: float,
    round_index: int = 0,
) -> TrainResult:
    """One training run on fixed targets into ``run_dir`` (the loop of :func:`frugalseg.engine.train.train`)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    network = create_model(
        config.model, in_channels=data.in_channels, num_classes=len(data.class_names), **_model_kwargs(config)
    ).to(device)
    model = SegmentationModel(
        network=network,
        model_name=config.model,
        size=config.size,
        in_channels=data.in_channels,
        class_names=data.class_names,
        flip_tta=config.flip_tta,
    )
    count = len(data.images)
    steps_per_epoch = max(config.min_steps_per_epoch, count // config.batch_size)
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, one_cycle(config.epochs * steps_per_epoch))
    generator = torch.Generator().manual_seed(config.seed + round_index)
    state: dict[str, Any] = {"epoch": 0, "best_dice": -1.0, "stale": 0}
    checkpoint_path = run_dir / CHECKPOINT_FILE
    if resume and checkpoint_path.exists():
        state = _load_checkpoint(checkpoint_path, network, optimizer, scheduler, generator)
    has_val = data.val_images is not None and data.val_labels is not None

    while state["epoch"] < config.epochs and not (config.patience and has_val and state["stale"] >= config.patience):
        epoch_started = time.perf_counter()
        train_loss = _train_epoch(
            network, optimizer, scheduler, data, config, weak, generator, state["epoch"], steps_per_epoch
        )
        if has_val:
            assert data.val_images is not None and data.val_labels is not None
            val_dice = _validation_dice(model, data.val_images, data.val_labels)
        else:
            val_dice = math.nan
        state["epoch"] += 1
        improved = not has_val or val_dice > state["best_dice"]
        state["stale"] = 0 if improved else state["stale"] + 1
        if improved:
            state["best_dice"] = val_dice if has_val else -1.0
            atomic_torch_save(run_dir / MODEL_FILE, model.bundle())
        _save_checkpoint(checkpoint_path, network, optimizer, scheduler, generator, state)
        record = {
            "epoch": state["epoch"],
            "round": round_index,
            "train_loss": train_loss,
            "val_dice": val_dice,
            "best_val_dice": state["best_dice"] if has_val else math.nan,
            "lr": scheduler.get_last_lr()[0],
            "seconds": time.perf_counter() - epoch_started,
        }
        append_jsonl(run_dir / "log.jsonl", record)
        if progress is not None:
            progress({**record, "epochs": config.epochs})

    best = SegmentationModel.load(run_dir).to(device)
    val_report: dict[str, Any] = {}
    if data.val_cases:
        best.postprocess = _choose_postprocess(best, data.val_cases)
        atomic_torch_save(run_dir / MODEL_FILE, best.bundle())
        val_report = {k: v for k, v in evaluate_model(best, data.val_cases).items() if k != "cases"}
    seconds = time.perf_counter() - started
    atomic_write_json(
        run_dir / "metrics.json",
        {
            "val": val_report,
            "epochs_run": state["epoch"],
            "train_seconds": seconds,
            "weak": {"labels": weak.labels, "method": weak.method, "round": round_index, "num_fit": count},
        },
    )
    return TrainResult(
        run_dir=run_dir, best_val_dice=float(state["best_dice"]), epochs_run=int(state["epoch"]), seconds=seconds
    )


def _train_epoch(
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    data: _Data,
    config: TrainConfig,
    weak: WeakConfig,
    generator: torch.Generator,
    epoch: int,
    steps_per_epoch: int,
) -> float:
    network.train()
    device = next(network.parameters()).device
    count = len(data.images)
    needed = steps_per_epoch * config.batch_size
    order = torch.cat([torch.randperm(count, generator=generator) for _ in range(-(-needed // count))])
    losses = []
    for step in range(steps_per_epoch):
        index = order[step * config.batch_size : (step + 1) * config.batch_size]
        batch = make_batch(
            data.images,
            data.targets,
            index,
            generator=generator,
            augment=config.augment,
            rotation=weak.labels != "boxes",
        ).to(device)
        loss = weak_loss(network(batch.images), batch, weak=weak, epoch=epoch)
        if not torch.isfinite(loss):
            raise InputError(f"training diverged: non-finite loss at epoch {epoch + 1} step {step}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses))
