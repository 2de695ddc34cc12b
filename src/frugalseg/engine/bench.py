"""``frugalseg bench supervised``: the fully supervised baseline on a held-out split by subject."""

from __future__ import annotations

import dataclasses
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from frugalseg.atomic import atomic_write_json
from frugalseg.data.case import Case, Dataset
from frugalseg.data.splits import train_test
from frugalseg.engine.config import TrainConfig
from frugalseg.engine.evaluate import evaluate_model
from frugalseg.engine.inference import SegmentationModel
from frugalseg.engine.train import train

__all__ = ["bench_supervised", "evenly_spaced", "held_out_split"]

QUICK_MAX_TRAIN = 48
QUICK_MAX_TEST = 16


def held_out_split(dataset: Dataset, *, seed: int, test_fraction: float = 0.2) -> tuple[list[Case], list[Case]]:
    """Labelled cases split into (train, test): the dataset's own test split, else ``test_fraction`` of subjects."""
    labelled = dataclasses.replace(dataset, cases=[case for case in dataset.cases if case.label is not None])
    return train_test(labelled, holdout_fraction=test_fraction, seed=seed)


def evenly_spaced(cases: Sequence[Case], count: int | None) -> list[Case]:
    """At most ``count`` of ``cases`` spread evenly over the list (all of them when ``count`` is ``None``).

    Case lists are ordered by id, and ids often follow acquisition (HC18 subject numbers, pullback frames), so
    the first ``count`` cases would be a biased sample.
    """
    if count is None or count >= len(cases):
        return list(cases)
    return [cases[int(i)] for i in np.linspace(0, len(cases) - 1, max(count, 0)).round()]


def bench_supervised(
    dataset: Dataset,
    json_path: str | Path,
    *,
    quick: bool = False,
    model: str = TrainConfig.model,
    epochs: int | None = None,
    pretrained: bool = TrainConfig.pretrained,
    seed: int = 0,
    log: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Train on the training subjects, evaluate on held-out subjects, write the report to ``json_path``."""
    json_path = Path(json_path)
    train_cases, test_cases = held_out_split(dataset, seed=seed)
    if quick:
        train_cases, test_cases = train_cases[:QUICK_MAX_TRAIN], test_cases[:QUICK_MAX_TEST]
    config = TrainConfig(model=model, pretrained=pretrained, seed=seed)
    config = dataclasses.replace(config, epochs=epochs or (2 if quick else config.epochs))
    run_dir = json_path.with_suffix("").with_name(json_path.stem + "-run")
    shutil.rmtree(run_dir, ignore_errors=True)
    log(f"training {model} on {len(train_cases)} cases, testing on {len(test_cases)} held-out cases")
    started = time.perf_counter()
    result = train(
        dataclasses.replace(dataset, cases=train_cases),
        config,
        run_dir,
        progress=lambda r: log(f"epoch {r['epoch']:3d}  val Dice {r['val_dice']:.4f}  ({r['seconds']:.0f} s)"),
    )
    report = evaluate_model(SegmentationModel.load(run_dir), test_cases)
    output = {
        "benchmark": "supervised",
        "dataset": {"root": dataset.root, "format": dataset.source_format, "classes": dataset.class_names},
        "num_train": len(train_cases),
        "num_test": len(test_cases),
        "config": config.to_dict(),
        "train_seconds": result.seconds,
        "total_seconds": time.perf_counter() - started,
        "epochs_run": result.epochs_run,
        "machine": {"threads": torch.get_num_threads(), "platform": platform.platform()},
        "test": report,
    }
    atomic_write_json(json_path, output)
    return output
