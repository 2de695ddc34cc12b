"""Agreement between two annotators on one image, per annotation kind (see :func:`agreement`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from frugalseg.annotations.kinds import Annotation, Boxes, PartialLabels, Point, Points, Scribbles, Tags
from frugalseg.data.case import Box

__all__ = ["agreement", "box_iou"]


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes' areas (``xyxy``, max exclusive); 0 for disjoint or empty boxes."""
    width = min(a.xmax, b.xmax) - max(a.xmin, b.xmin)
    height = min(a.ymax, b.ymax) - max(a.ymin, b.ymin)
    inter = max(0.0, width) * max(0.0, height)
    union = (a.xmax - a.xmin) * (a.ymax - a.ymin) + (b.xmax - b.xmin) * (b.ymax - b.ymin) - inter
    return float(inter / union) if union > 0 else 0.0


def _match(cost: np.ndarray) -> list[tuple[int, int]]:
    if cost.size == 0:
        return []
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True)]


def _dice_on(a: np.ndarray, b: np.ndarray, both: np.ndarray) -> tuple[float, int]:
    """Mean per-class Dice of two label maps over the pixels ``both`` labels; and how many such pixels."""
    count = int(np.count_nonzero(both))
    if count == 0:
        return math.nan, 0
    la, lb = a[both], b[both]
    scores = []
    for c in np.union1d(np.unique(la), np.unique(lb)):
        ia, ib = la == c, lb == c
        scores.append(2.0 * np.count_nonzero(ia & ib) / (np.count_nonzero(ia) + np.count_nonzero(ib)))
    return float(np.mean(scores)), count


def agreement(a: Annotation, b: Annotation, *, spacing: Sequence[float] | None = None) -> dict[str, float]:
    """How well two annotators agree on one image (both annotations of the same kind).

    * tags: ``{"tag_jaccard"}`` (1 when both are empty).
    * boxes: boxes matched one-to-one within each class maximising IoU (Hungarian); ``{"box_iou"`` mean IoU
      of the matched pairs (NaN when none), ``"matched"``, ``"unmatched"`` (boxes of either annotator without
      an overlapping partner)``}``.
    * points: points matched within each label minimising distance; ``{"point_distance"`` mean distance of
      matched pairs in pixels, or in mm with ``spacing=(row_mm, col_mm)`` (NaN when none), ``"matched"``,
      ``"unmatched"}``.
    * scribbles / partial labels: ``{"dice"`` mean over classes of the Dice between the two label maps on the
      pixels both labelled (NaN when there is none), ``"both_labelled"`` (that pixel count)``}``.

    Raises:
        ValueError: different kinds, or label maps of different sizes.
    """
    if a.kind != b.kind:
        raise ValueError(f"agreement needs two annotations of one kind, got {a.kind} and {b.kind}")
    if isinstance(a, Tags) and isinstance(b, Tags):
        sa, sb = set(a.classes), set(b.classes)
        return {"tag_jaccard": 1.0 if not (sa | sb) else len(sa & sb) / len(sa | sb)}
    if isinstance(a, Boxes) and isinstance(b, Boxes):
        ious: list[float] = []
        total = len(a.boxes) + len(b.boxes)
        for c in sorted({box.label for box in a.boxes} | {box.label for box in b.boxes}):
            ba = [box for box in a.boxes if box.label == c]
            bb = [box for box in b.boxes if box.label == c]
            matrix = np.array([[box_iou(x, y) for y in bb] for x in ba]).reshape(len(ba), len(bb))
            ious += [float(matrix[i, j]) for i, j in _match(-matrix) if matrix[i, j] > 0]
        return {
            "box_iou": float(np.mean(ious)) if ious else math.nan,
            "matched": float(len(ious)),
            "unmatched": float(total - 2 * len(ious)),
        }
    if isinstance(a, Points) and isinstance(b, Points):
        row_mm, col_mm = (1.0, 1.0) if spacing is None else (float(spacing[0]), float(spacing[1]))
        distances: list[float] = []

        def coords(points: list[Point]) -> np.ndarray:
            return np.array([[p.row * row_mm, p.col * col_mm] for p in points], dtype=np.float64).reshape(-1, 2)

        for c in sorted({p.label for p in a.points} | {p.label for p in b.points}):
            pa, pb = coords([p for p in a.points if p.label == c]), coords([p for p in b.points if p.label == c])
            matrix = np.linalg.norm(pa[:, None, :] - pb[None, :, :], axis=-1)
            distances += [float(matrix[i, j]) for i, j in _match(matrix)]
        return {
            "point_distance": float(np.mean(distances)) if distances else math.nan,
            "matched": float(len(distances)),
            "unmatched": float(len(a.points) + len(b.points) - 2 * len(distances)),
        }
    if isinstance(a, Scribbles | PartialLabels) and isinstance(b, Scribbles | PartialLabels):
        if a.shape != b.shape:
            raise ValueError(f"label maps of different sizes: {a.shape} and {b.shape}")
        dice, count = _dice_on(a.label, b.label, a.valid_mask & b.valid_mask)
        return {"dice": dice, "both_labelled": float(count)}
    raise ValueError(f"agreement: unsupported annotation type {type(a).__name__}")
