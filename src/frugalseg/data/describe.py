"""A summary of a dataset: sizes, spacing, classes and the kinds of annotation it carries."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from frugalseg.data.case import IGNORE, Dataset

__all__ = ["describe_dataset", "format_description"]


def describe_dataset(dataset: Dataset) -> dict[str, Any]:
    """Summarise a dataset as a JSON-friendly dict.

    Args:
        dataset: the dataset to describe.

    Returns:
        A dict with ``format``, ``root``, ``num_cases``, ``num_subjects``, ``splits`` (cases per split,
        ``"none"`` for unset), ``image_size`` (``min``/``max`` ``[H, W]``), ``channels`` and ``dtypes``
        (sorted distinct values), ``spacing`` (``min``/``max`` ``[row_mm, col_mm]`` and ``known``: ``True``,
        ``False`` or ``"partly"``, from ``metadata['spacing_known']``, absent meaning known),
        ``num_labelled`` (cases with a label map), ``classes`` (``index``, ``name``, ``pixel_fraction`` over
        the labelled pixels of labelled cases, ``IGNORE`` pixels excluded), ``unlabelled_pixel_fraction``
        (``IGNORE`` pixels over all pixels of labelled cases) and ``annotations`` (numbers of cases with
        ``full_masks``, ``partial_masks`` (holding ``IGNORE``), ``boxes``, ``tags``, and ``num_boxes``).
    """
    cases = dataset.cases
    summary: dict[str, Any] = {
        "format": dataset.source_format,
        "root": dataset.root,
        "num_cases": len(cases),
        "num_subjects": len({case.subject_id for case in cases}),
        "splits": dict(sorted(Counter(case.split or "none" for case in cases).items())),
    }
    if cases:
        shapes = np.array([case.shape for case in cases])
        spacings = np.array([case.spacing for case in cases], dtype=np.float64)
        summary["image_size"] = {"min": shapes.min(axis=0).tolist(), "max": shapes.max(axis=0).tolist()}
        summary["channels"] = sorted({case.channels for case in cases})
        summary["dtypes"] = sorted({str(case.image.dtype) for case in cases})
        known = [bool(case.metadata.get("spacing_known", True)) for case in cases]
        summary["spacing"] = {
            "min": spacings.min(axis=0).tolist(),
            "max": spacings.max(axis=0).tolist(),
            "known": True if all(known) else (False if not any(known) else "partly"),
        }
    else:
        summary["image_size"] = {"min": None, "max": None}
        summary["channels"], summary["dtypes"] = [], []
        summary["spacing"] = {"min": None, "max": None, "known": False}

    counts = np.zeros(256, dtype=np.int64)
    labelled = 0
    partial = 0
    for case in cases:
        if case.label is None:
            continue
        labelled += 1
        case_counts = np.bincount(case.label.ravel(), minlength=256)
        partial += int(case_counts[IGNORE] > 0)
        counts += case_counts
    total_pixels = int(counts.sum())
    ignored = int(counts[IGNORE])
    counts[IGNORE] = 0
    labelled_pixels = int(counts.sum())
    summary["num_labelled"] = labelled
    summary["classes"] = [
        {
            "index": index,
            "name": name,
            "pixel_fraction": float(counts[index] / labelled_pixels) if labelled_pixels else None,
        }
        for index, name in enumerate(dataset.class_names)
    ]
    summary["unlabelled_pixel_fraction"] = float(ignored / total_pixels) if total_pixels else None
    summary["annotations"] = {
        "full_masks": labelled - partial,
        "partial_masks": partial,
        "boxes": sum(1 for case in cases if case.boxes),
        "num_boxes": sum(len(case.boxes) for case in cases),
        "tags": sum(1 for case in cases if case.tags),
    }
    return summary


def _pair(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    return " x ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) + unit


def format_description(summary: dict[str, Any]) -> str:
    """Render :func:`describe_dataset`'s summary as a readable plain-text table.

    Args:
        summary: the dict returned by :func:`describe_dataset`.

    Returns:
        Several lines of text, without a trailing newline.
    """
    spacing = summary["spacing"]
    known = {True: "known", False: "unknown (pixels)", "partly": "partly known"}[spacing["known"]]
    splits = ", ".join(f"{name} {count}" for name, count in summary["splits"].items()) or "-"
    notes = summary["annotations"]
    kinds = ", ".join(
        f"{label} {notes[key]}"
        for key, label in (("full_masks", "full masks"), ("partial_masks", "partial masks"), ("tags", "tags"))
        if notes[key]
    )
    if notes["boxes"]:
        kinds = ", ".join(filter(None, [kinds, f"boxes {notes['num_boxes']} on {notes['boxes']} cases"]))
    rows = [
        ("format", str(summary["format"])),
        ("root", str(summary["root"]) or "-"),
        ("cases", str(summary["num_cases"])),
        ("subjects", str(summary["num_subjects"])),
        ("splits", splits),
        (
            "image size",
            f"{_pair(summary['image_size']['min'])} .. {_pair(summary['image_size']['max'])} (H x W)",
        ),
        ("channels", ", ".join(str(c) for c in summary["channels"]) or "-"),
        ("dtypes", ", ".join(summary["dtypes"]) or "-"),
        ("spacing", f"{_pair(spacing['min'])} .. {_pair(spacing['max'])} mm/px, {known}"),
        ("labelled cases", str(summary["num_labelled"])),
        ("annotations", kinds or "none"),
    ]
    width = max(len(key) for key, _ in rows)
    lines = [f"{key:<{width}}  {value}" for key, value in rows]
    lines.append("")
    name_width = max([len("class"), *(len(c["name"]) for c in summary["classes"])])
    lines.append(f"{'index':>5}  {'class':<{name_width}}  pixel fraction")
    for entry in summary["classes"]:
        fraction = "-" if entry["pixel_fraction"] is None else f"{entry['pixel_fraction']:.4f}"
        lines.append(f"{entry['index']:>5}  {entry['name']:<{name_width}}  {fraction}")
    if summary.get("unlabelled_pixel_fraction"):
        lines.append(f"{'':>5}  {'(unlabelled)':<{name_width}}  {summary['unlabelled_pixel_fraction']:.4f}")
    return "\n".join(lines)
