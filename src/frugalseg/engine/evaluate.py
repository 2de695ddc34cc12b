"""Evaluate a segmentation model on labelled cases at their original resolution, distances in mm."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from frugalseg.data.case import Case
from frugalseg.engine.inference import SegmentationModel
from frugalseg.errors import InputError
from frugalseg.metrics import case_metrics, ivus_measures, summarise

__all__ = ["IVUS_CLASSES", "evaluate_model"]

IVUS_CLASSES = ["background", "lumen", "vessel_wall"]


def evaluate_model(
    model: SegmentationModel,
    cases: Sequence[Case],
    *,
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Per-case and mean Dice, Jaccard, HD95 and ASSD (mm) of ``model`` on the labelled ``cases``.

    IVUS datasets (classes background, lumen, vessel_wall) also get the challenge measures JCC, PAD and HD
    for lumen and vessel.

    Returns:
        ``{"mean": {...}, "per_class": {...}, "cases": [...], "num_cases": n}`` (plus ``"ivus"``).
    """
    labelled = [case for case in cases if case.label is not None]
    if not labelled:
        raise InputError("no labelled cases to evaluate (expected images with masks)")
    is_ivus = model.class_names == IVUS_CLASSES
    results: list[dict[str, Any]] = []
    ivus_rows: list[dict[str, dict[str, float]]] = []
    for start in range(0, len(labelled), batch_size):
        chunk = labelled[start : start + batch_size]
        predictions = model.predict([case.image for case in chunk], batch_size=batch_size)
        for case, prediction in zip(chunk, predictions, strict=True):
            assert case.label is not None
            if int(case.label[case.label != 255].max(initial=0)) >= model.num_classes:
                raise InputError(f"case {case.case_id}: label values exceed the model's {model.num_classes} classes")
            row = case_metrics(
                prediction,
                case.label,
                num_classes=model.num_classes,
                spacing=case.spacing,
                class_names=model.class_names,
            )
            results.append({"case_id": case.case_id, "subject_id": case.subject_id, **row})
            if is_ivus:
                ivus_rows.append(ivus_measures(prediction, case.label, spacing=case.spacing))
        if progress is not None:
            progress(min(start + batch_size, len(labelled)), len(labelled))
    report: dict[str, Any] = {**summarise(results), "num_cases": len(results), "cases": results}
    if ivus_rows:
        report["ivus"] = {
            structure: {
                name: float(np.nanmean([r[structure][name] for r in ivus_rows])) for name in ivus_rows[0][structure]
            }
            for structure in ivus_rows[0]
        }
    return report
