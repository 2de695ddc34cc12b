"""The pseudo-mask side of ``frugalseg bench foundation``: pseudo-mask Dice against the ground truth, and the
student trained on the pseudo-masks against the same network trained on the full masks of the same images."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from frugalseg.data.case import IGNORE, Case, Dataset
from frugalseg.engine.config import TrainConfig
from frugalseg.engine.evaluate import evaluate_model
from frugalseg.engine.inference import SegmentationModel
from frugalseg.engine.train import train
from frugalseg.metrics import foreground_dice

__all__ = ["bench_student", "pseudo_scores"]


def pseudo_scores(cases: Sequence[Case], pseudo_cases: Sequence[Case]) -> dict[str, Any]:
    """Pseudo-mask Dice against the ground truth: over labelled pixels only, and with IGNORE counted as wrong."""
    truth = {case.case_id: case.label for case in cases}
    valid_dice, all_dice, ignored = [], [], []
    for case in pseudo_cases:
        target, pseudo = truth[case.case_id], case.label
        assert target is not None and pseudo is not None
        valid_dice.append(foreground_dice(pseudo, target, valid_mask=pseudo != IGNORE))
        all_dice.append(foreground_dice(pseudo, target))
        ignored.append(float((pseudo == IGNORE).mean()))
    return {
        "dice": float(np.mean(valid_dice)),
        "dice_ignore_as_wrong": float(np.mean(all_dice)),
        "ignored_pixel_fraction": float(np.mean(ignored)),
    }


def bench_student(
    dataset: Dataset,
    train_cases: Sequence[Case],
    test_cases: Sequence[Case],
    pseudo_cases: Sequence[Case],
    work_dir: str | Path,
    *,
    config: TrainConfig,
    log: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Train ``config.model`` on ``pseudo_cases`` (pseudo-masks of some of ``train_cases``, as
    :func:`~frugalseg.foundation.pseudolabel.load_pseudolabels` reads them) and on the full masks of the same images.

    Returns:
        ``{"dice": student held-out Dice, "full_dice": ..., "fraction_of_full": dice / full_dice,
        "num_train": ..., "student": report, "full": report}``.
    """
    work_dir = Path(work_dir)
    ids = {case.case_id for case in pseudo_cases}
    full_cases = [case for case in train_cases if case.case_id in ids]
    reports = {}
    for name, cases in (("student", pseudo_cases), ("full", full_cases)):
        log(f"training the {name} model on {len(cases)} images")
        run_dir = work_dir / name
        train(dataclasses.replace(dataset, cases=list(cases)), config, run_dir)
        report = evaluate_model(SegmentationModel.load(run_dir), test_cases)
        reports[name] = {key: value for key, value in report.items() if key != "cases"}
    dice, full = reports["student"]["mean"]["dice"], reports["full"]["mean"]["dice"]
    return {
        "dice": dice,
        "full_dice": full,
        "fraction_of_full": dice / full if full > 0 else None,
        "num_train": len(pseudo_cases),
        "config": config.to_dict(),
        "student": reports["student"],
        "full": reports["full"],
    }
