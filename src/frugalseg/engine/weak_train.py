"""Training from weak labels: boxes, points, scribbles, tags, partial labels or pseudo-label folders.

The run directory is a supervised run directory plus ``weak_config.json``: ``config.json`` (the
:class:`~frugalseg.engine.config.TrainConfig`), ``split.json``, ``model.pt`` (a
:class:`~frugalseg.engine.inference.SegmentationModel` bundle, so ``frugalseg evaluate`` / ``predict`` work
unchanged), ``checkpoint.pt`` (resume), ``log.jsonl`` and ``metrics.json``. Tag runs, and scribble runs with
``litemedsam``, refine their pseudo-masks ``refine_rounds`` times; each earlier round is a complete run in
``round<k>/`` inside the run directory.

The loop mirrors :func:`frugalseg.engine.train.train`: the same subject split (``val_fraction``, ``seed``),
one-cycle schedule, AdamW, checkpoints and resume (helpers imported from :mod:`frugalseg.engine.train`), and
model selection by the Dice of the validation cases' FULL masks when they have some (otherwise the last
epoch is kept). Only the targets (:mod:`~frugalseg.engine.weak_labels`) and the loss
(:mod:`~frugalseg.engine.weak_losses`) differ.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from frugalseg.atomic import atomic_write_json
from frugalseg.data.case import IGNORE, Case, Dataset
from frugalseg.engine.config import TrainConfig, load_config
from frugalseg.engine.fit import ProgressCallback, TrainResult, finish_run, fit_epochs
from frugalseg.engine.inference import SegmentationModel
from frugalseg.engine.preprocess import image_to_tensor, stack_cases
from frugalseg.engine.train import model_kwargs, validation_split
from frugalseg.engine.weak_config import WeakConfig, load_weak_config
from frugalseg.engine.weak_labels import WeakAnnotation, build_weak_targets, weak_annotations
from frugalseg.engine.weak_losses import weak_loss
from frugalseg.engine.weak_targets import WeakTargets, make_batch
from frugalseg.errors import InputError
from frugalseg.models import create_model
from frugalseg.pseudolabels import labels_from_probabilities, refine_pseudo_labels

if TYPE_CHECKING:
    from frugalseg.foundation import PromptableSegmenter

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
    return validation_split([case for case in dataset.cases if case.split != "test"], config)


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
    segmenter: PromptableSegmenter | None = None,
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
        segmenter: method ``litemedsam``: the promptable model that makes the pseudo-masks (default: the
            cached LiteMedSAM weights).

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
        segmenter=segmenter,
    )
    val_images, val_labels = None, None
    if val_cases:
        val_images, val_labels = stack_cases(
            val_cases, size=config.size, in_channels=in_channels, num_classes=dataset.num_classes
        )
    data = _Data(images, targets, val_cases, val_images, val_labels, in_channels, list(dataset.class_names))
    refined = weak.labels == "tags" or (weak.labels == "scribbles" and weak.method == "litemedsam")
    if not refined or weak.refine_rounds == 0:
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
        if weak.method == "litemedsam":  # the prediction only places the boxes; the foundation model draws
            from frugalseg.engine.weak_foundation import foundation_region_labels

            coarse, _ = labels_from_probabilities(probabilities, allowed=targets.tags)
            label = foundation_region_labels(
                fit_cases,
                coarse,
                classes=targets.tags if weak.labels == "tags" else None,
                seeds=targets.label if weak.labels == "scribbles" else None,
                num_classes=dataset.num_classes,
                seed=config.seed,
                segmenter=segmenter,
            )
            return dataclasses.replace(targets, label=label, weight=(label != IGNORE).float())
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
    """One training run on fixed targets into ``run_dir`` (see :mod:`frugalseg.engine.fit`)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    network = create_model(
        config.model, in_channels=data.in_channels, num_classes=len(data.class_names), **model_kwargs(config)
    ).to(device)
    model = SegmentationModel(
        network=network,
        model_name=config.model,
        size=config.size,
        in_channels=data.in_channels,
        class_names=data.class_names,
        flip_tta=config.flip_tta,
    )

    def batch_loss(index: torch.Tensor, generator: torch.Generator, epoch: int) -> torch.Tensor:
        batch = make_batch(
            data.images,
            data.targets,
            index,
            generator=generator,
            augment=config.augment,
            rotation=weak.labels != "boxes",
        ).to(device)
        return weak_loss(network(batch.images), batch, weak=weak, epoch=epoch)

    validation = None
    if data.val_images is not None and data.val_labels is not None:
        validation = (data.val_images, data.val_labels)
    state = fit_epochs(
        run_dir,
        model,
        config,
        num_images=len(data.images),
        batch_loss=batch_loss,
        validation=validation,
        seed=config.seed + round_index,
        resume=resume,
        progress=progress,
        log_fields={"round": round_index},
    )
    weak_fields = {"labels": weak.labels, "method": weak.method, "round": round_index, "num_fit": len(data.images)}
    return finish_run(
        run_dir, state, data.val_cases, device=device, started=started, metrics_fields={"weak": weak_fields}
    )
