"""Per-case metrics of a predicted label map and their summary over a set of cases.

Per foreground class: Dice, Jaccard, HD95 (mm) and ASSD (mm). Empty rules are those of
:mod:`frugalseg.metrics.overlap` (both empty ``1.0``, one empty ``0.0``) and :mod:`frugalseg.metrics.distance`
(both empty ``0.0``, one empty ``NaN``). Means skip ``NaN`` values; a mean of nothing but ``NaN`` is ``NaN``.

Target pixels equal to ``IGNORE`` (255) are excluded from the overlap metrics. The distance metrics treat
them as "not this class" and use the whole prediction, so on partially labelled targets they measure the
prediction against the labelled part only and are best read with care.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from frugalseg.data.case import IGNORE
from frugalseg.metrics._checks import as_label_map, check_pair, check_spacing
from frugalseg.metrics.distance import distance_metrics_mm
from frugalseg.metrics.overlap import dice_score, jaccard_score

__all__ = ["METRIC_NAMES", "case_metrics", "summarise"]

METRIC_NAMES: tuple[str, ...] = ("dice", "jaccard", "hd95_mm", "assd_mm")
"""The metrics reported per class, in report order."""


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(sum(finite) / len(finite)) if finite else float("nan")


def case_metrics(
    pred_label: np.ndarray,
    target_label: np.ndarray,
    *,
    num_classes: int,
    spacing: Sequence[float],
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Dice, Jaccard, HD95 and ASSD of every foreground class of one case, and their mean over classes.

    Args:
        pred_label: predicted class indices.
        target_label: reference class indices, ``IGNORE`` (255) where unlabelled.
        num_classes: number of classes including background (class 0, which is not scored).
        spacing: ``(row_mm, col_mm)`` pixel size in millimetres.
        class_names: ``num_classes`` names, background first (as ``Dataset.class_names``); default
            ``"class_1"``, ``"class_2"``, ...

    Returns:
        ``{"per_class": {name: {"dice", "jaccard", "hd95_mm", "assd_mm"}}, "mean": {same keys}}`` with
        Python floats; ``"mean"`` averages the foreground classes skipping ``NaN``.

    Shape:
        ``pred_label``, ``target_label``: ``(H, W)`` integer.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    names = _class_names(class_names, num_classes)
    pred = as_label_map(pred_label, "pred_label")
    target = as_label_map(target_label, "target_label")
    check_pair(pred, target)
    spacing_mm = check_spacing(spacing)
    valid = target != IGNORE
    per_class: dict[str, dict[str, float]] = {}
    for c, name in enumerate(names[1:], start=1):
        p = pred == c
        t = target == c
        distances = distance_metrics_mm(p, t, spacing=spacing_mm)
        per_class[name] = {
            "dice": dice_score(p, t, valid_mask=valid),
            "jaccard": jaccard_score(p, t, valid_mask=valid),
            "hd95_mm": distances["hd95_mm"],
            "assd_mm": distances["assd_mm"],
        }
    mean = {m: _nanmean([scores[m] for scores in per_class.values()]) for m in METRIC_NAMES}
    return {"per_class": per_class, "mean": mean}


def summarise(case_results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean of :func:`case_metrics` results over cases, per class and overall.

    ``NaN`` values (a distance with exactly one empty mask) are skipped and counted: ``hd95_undefined`` is
    the number of cases whose HD95 of that class is ``NaN``. The overall ``"mean"`` of a metric is the
    mean over classes of the per-class means (each class weighs the same, whatever its case count).

    Args:
        case_results: outputs of :func:`case_metrics`, all with the same class names.

    Returns:
        ``{"num_cases": N, "mean": {metric: value}, "per_class": {name: {metric: mean, ...,
        "hd95_undefined": count}}}``.
    """
    if not case_results:
        raise ValueError("summarise needs at least one case result, got an empty list")
    names = list(case_results[0]["per_class"])
    for i, result in enumerate(case_results):
        if list(result["per_class"]) != names:
            raise ValueError(
                f"case result {i} has classes {list(result['per_class'])}, expected {names} like the first"
            )
    per_class: dict[str, dict[str, float | int]] = {}
    for name in names:
        scores = [result["per_class"][name] for result in case_results]
        entry: dict[str, float | int] = {m: _nanmean([float(s[m]) for s in scores]) for m in METRIC_NAMES}
        entry["hd95_undefined"] = sum(1 for s in scores if math.isnan(float(s["hd95_mm"])))
        per_class[name] = entry
    mean = {m: _nanmean([float(entry[m]) for entry in per_class.values()]) for m in METRIC_NAMES}
    return {"num_cases": len(case_results), "mean": mean, "per_class": per_class}


def _class_names(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
    if class_names is None:
        return ["background", *(f"class_{c}" for c in range(1, num_classes))]
    names = [str(n) for n in class_names]
    if len(names) != num_classes:
        raise ValueError(
            f"class_names must hold num_classes={num_classes} names (background first), got {len(names)}: {names}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"class_names must be unique, got {names}")
    return names
