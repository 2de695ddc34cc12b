"""``frugalseg bench weak``: every annotation kind and method against full supervision, with annotation effort.

On the held-out split of :func:`~frugalseg.engine.bench.held_out_split`, the fully supervised model
(:func:`~frugalseg.engine.train.train`) and one weakly supervised model per kind and method
(:func:`~frugalseg.engine.weak_train.train_weak`, annotations simulated from the training masks with the
bench's seed) are trained with the same :class:`~frugalseg.engine.config.TrainConfig` (model and schedule)
and evaluated on the held-out subjects' full masks. Each row reports the mean foreground Dice, that Dice as a
percentage of the fully supervised Dice, and the simulated annotation seconds per training image
(:func:`~frugalseg.annotations.annotation_seconds`; the full row uses
:func:`~frugalseg.annotations.full_mask_seconds`).

Model selection and post-processing of every run use the full masks of the validation subjects
(``config.val_fraction`` of the training subjects), as the supervised baseline does; the report says how many.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from frugalseg.annotations import annotation_seconds, full_mask_seconds
from frugalseg.atomic import atomic_write_json
from frugalseg.data.case import Case, Dataset
from frugalseg.engine.bench import QUICK_MAX_TEST, QUICK_MAX_TRAIN, held_out_split
from frugalseg.engine.config import TrainConfig
from frugalseg.engine.evaluate import evaluate_model
from frugalseg.engine.inference import SegmentationModel
from frugalseg.engine.train import train
from frugalseg.engine.weak_config import METHODS, WeakConfig
from frugalseg.engine.weak_labels import WeakAnnotation, weak_annotations
from frugalseg.engine.weak_train import WEAK_CONFIG_FILE, train_weak, weak_split
from frugalseg.errors import InputError
from frugalseg.pseudolabels import PseudoLabel

__all__ = ["DEFAULT_KINDS", "bench_weak", "format_weak_table", "parse_methods"]

DEFAULT_KINDS = ("boxes", "points", "scribbles", "tags", "partial")


def parse_methods(specs: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """``["points:region_growing", "points:random_walker", "boxes"]`` -> ``{kind: methods}`` (a bare kind: default).

    Raises:
        InputError: an unknown kind or method.
    """
    out: dict[str, list[str]] = {}
    for spec in specs:
        kind, _, method = spec.partition(":")
        try:
            resolved = WeakConfig(labels=kind, method=method, source="x" if kind == "pseudo" else "simulate").method
        except InputError as error:
            raise InputError(f"--method {spec}: {error}") from None
        out.setdefault(kind, [])
        if resolved not in out[kind]:
            out[kind].append(resolved)
    return {kind: tuple(methods) for kind, methods in out.items()}


def _mean_dice(report: dict[str, Any]) -> float:
    return float(report["mean"]["dice"])


def bench_weak(
    dataset: Dataset,
    json_path: str | Path,
    *,
    kinds: Sequence[str] = DEFAULT_KINDS,
    methods: Mapping[str, Sequence[str]] | None = None,
    quick: bool = False,
    seed: int = 0,
    config: TrainConfig | None = None,
    weak_options: Mapping[str, Any] | None = None,
    device: str = "cpu",
    log: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Train the full reference and every kind/method, evaluate on held-out subjects, write ``json_path``.

    Args:
        dataset: a labelled dataset (annotations are simulated from its masks).
        json_path: the report to write; runs go to ``<stem>-runs/`` beside it. A run that finished there
            with the same dataset, seed, split and settings is reused, so an interrupted bench (or one given
            more kinds) trains only what is missing.
        kinds: annotation kinds to run (``full`` is always run as the reference).
        methods: ``{kind: methods}``; kinds not listed run their default method.
        quick: at most ``QUICK_MAX_TRAIN`` training and ``QUICK_MAX_TEST`` test cases, 2 epochs.
        seed: held-out split, annotation simulation and training seed.
        config: model and schedule shared by every run (default: ``TrainConfig(seed=seed)``).
        weak_options: extra :class:`~frugalseg.engine.weak_config.WeakConfig` fields for every weak run.
        device: where the networks train.
        log: one line per step.

    Returns:
        The report written: ``{"benchmark": "weak", "dataset", "num_train", "num_test", "num_val_full_masks",
        "config", "full_dice", "rows": [{labels, method, dice, dice_percent_of_full, seconds_per_image,
        per_class, train_seconds}, ...], "skipped", "machine", "total_seconds"}``.
    """
    json_path = Path(json_path)
    started = time.perf_counter()
    unknown = [kind for kind in kinds if kind not in METHODS or kind in ("full", "pseudo")]
    if unknown:
        raise InputError(f"bench weak: unknown or unsupported kinds {unknown}; expected some of {DEFAULT_KINDS}")
    train_cases, test_cases = held_out_split(dataset, seed=seed)
    if quick:
        train_cases, test_cases = train_cases[:QUICK_MAX_TRAIN], test_cases[:QUICK_MAX_TEST]
    if not test_cases:
        raise InputError(f"{dataset.root or dataset.source_format}: no held-out labelled case to test on")
    config = config or TrainConfig(seed=seed)
    if quick:
        config = dataclasses.replace(config, epochs=min(config.epochs, 2))
    train_set = dataclasses.replace(dataset, cases=train_cases)
    runs = _runs_folder(json_path, {"dataset": str(dataset.root), "seed": seed, "train": len(train_cases)})
    fit_pool, val_pool = weak_split(train_set, config)

    def on_epoch(name: str) -> Callable[[dict[str, Any]], None]:
        return lambda r: log(f"{name:28s} epoch {r['epoch']:3d}  val Dice {r['val_dice']:.4f}  ({r['seconds']:.0f} s)")

    log(f"full supervision: {len(train_cases)} training cases, {len(test_cases)} held-out cases")
    full_seconds_trained = _finished_seconds(runs / "full", config, None, log)
    if full_seconds_trained is None:
        full_seconds_trained = train(train_set, config, runs / "full", device=device, progress=on_epoch("full")).seconds
    full_report = evaluate_model(SegmentationModel.load(runs / "full"), test_cases)
    full_dice = _mean_dice(full_report)
    fitted = _fitted(runs / "full", train_cases)
    full_seconds = float(
        np.mean([full_mask_seconds(c.label, spacing=c.spacing) for c in fitted if c.label is not None])
    )
    rows = [_row("full", "dice_ce", full_report, full_dice, full_seconds_trained, full_seconds)]
    skipped: list[dict[str, str]] = []
    for kind in kinds:
        for method in (methods or {}).get(kind, (METHODS[kind][0],)):
            name = f"{kind}/{method}"
            if kind == "partial" and dataset.num_classes < 3:
                skipped.append({"labels": kind, "method": method, "reason": "one foreground class"})
                continue
            weak = WeakConfig(labels=kind, method=method, **dict(weak_options or {}))
            annotations = weak_annotations(fit_pool, weak, num_classes=dataset.num_classes, seed=config.seed)
            run_dir = runs / name.replace("/", "-")
            trained = _finished_seconds(run_dir, config, weak, log)
            if trained is None:
                log(f"{name}: training")
                trained = train_weak(
                    train_set, config, weak, run_dir, annotations=annotations, device=device, progress=on_epoch(name)
                ).seconds
            report = evaluate_model(SegmentationModel.load(run_dir), test_cases)
            used = _fitted(run_dir, train_cases)
            seconds = float(np.mean([_seconds(annotations[c.case_id], c, dataset.num_classes) for c in used]))
            rows.append(_row(kind, method, report, full_dice, trained, seconds))
            log(f"{name}: Dice {rows[-1]['dice']:.4f} ({rows[-1]['dice_percent_of_full']:.1f}% of full)")
    output = {
        "benchmark": "weak",
        "dataset": {"root": dataset.root, "format": dataset.source_format, "classes": dataset.class_names},
        "num_train": len(train_cases),
        "num_test": len(test_cases),
        "num_fit_pool": len(fit_pool),
        "num_val_full_masks": sum(1 for c in val_pool if c.label is not None),
        "config": config.to_dict(),
        "weak_options": dict(weak_options or {}),
        "seed": seed,
        "full_dice": full_dice,
        "rows": rows,
        "skipped": skipped,
        "machine": {"threads": torch.get_num_threads(), "platform": platform.platform()},
        "total_seconds": time.perf_counter() - started,
    }
    atomic_write_json(json_path, output)
    return output


def _runs_folder(json_path: Path, stamp: dict[str, Any]) -> Path:
    """``<stem>-runs/`` beside the report, emptied unless it holds runs of the same dataset, seed and split."""
    runs = json_path.with_suffix("").with_name(json_path.stem + "-runs")
    try:
        same = json.loads((runs / "bench.json").read_text()) == stamp
    except (OSError, json.JSONDecodeError):
        same = False
    if not same:
        shutil.rmtree(runs, ignore_errors=True)
        runs.mkdir(parents=True)
        atomic_write_json(runs / "bench.json", stamp)
    return runs


def _finished_seconds(
    run_dir: Path, config: TrainConfig, weak: WeakConfig | None, log: Callable[[str], Any]
) -> float | None:
    """Training seconds of a run that finished in ``run_dir`` with these settings; otherwise ``None``, and an
    unfinished or different run there is removed (a bench interrupted mid-run redoes only that run)."""
    expected = {"config.json": config.to_dict()} | ({} if weak is None else {WEAK_CONFIG_FILE: weak.to_dict()})
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        same = all(json.loads((run_dir / f).read_text()) == json.loads(json.dumps(v)) for f, v in expected.items())
    except (OSError, json.JSONDecodeError):
        same = False
    if same:
        log(f"{run_dir.name}: finished before, reused")
        return float(metrics["train_seconds"])
    shutil.rmtree(run_dir, ignore_errors=True)
    return None


def _seconds(annotation: WeakAnnotation, case: Case, num_classes: int) -> float:
    if isinstance(annotation, PseudoLabel):
        return 0.0  # made by a program, not an annotator
    return annotation_seconds(annotation, num_classes=num_classes, spacing=case.spacing)


def _fitted(run_dir: Path, cases: Sequence[Case]) -> list[Case]:
    """The cases a run was fitted on (its ``split.json``)."""
    ids = set(json.loads((run_dir / "split.json").read_text())["train"])
    return [case for case in cases if case.case_id in ids]


def _row(
    kind: str, method: str, report: dict[str, Any], full_dice: float, train_seconds: float, seconds: float
) -> dict[str, Any]:
    dice = _mean_dice(report)
    return {
        "labels": kind,
        "method": method,
        "dice": dice,
        "dice_percent_of_full": 100.0 * dice / full_dice if full_dice > 0 else float("nan"),
        "seconds_per_image": seconds,
        "per_class": {name: values.get("dice") for name, values in report.get("per_class", {}).items()},
        "train_seconds": train_seconds,
    }


def format_weak_table(reports: dict[str, Any] | Sequence[dict[str, Any]]) -> str:
    """A Markdown table of one or several ``bench weak`` reports (one row per dataset, kind and method)."""
    listed = [reports] if isinstance(reports, dict) else list(reports)
    lines = [
        "| dataset | labels | method | Dice | % of full | annotation s / image |",
        "|---|---|---|---:|---:|---:|",
    ]
    for report in listed:
        name = Path(report["dataset"]["root"]).name or report["dataset"]["format"]
        for row in report["rows"]:
            percent = row["dice_percent_of_full"]
            percent_text = "–" if percent is None or percent != percent else f"{percent:.1f}"
            lines.append(
                f"| {name} | {row['labels']} | {row['method']} | {row['dice']:.4f} | {percent_text} "
                f"| {row['seconds_per_image']:.1f} |"
            )
    return "\n".join(lines)
