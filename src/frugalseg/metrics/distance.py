"""Boundary distances between two masks, in millimetres: HD95, ASSD and the (maximum) Hausdorff distance.

The definitions follow MONAI (``compute_hausdorff_distance`` / ``compute_average_surface_distance``) and
are cross-checked against it in the tests:

* the *boundary* of a mask is its foreground pixels that have a 4-connected background neighbour
  (``mask ^ binary_erosion(mask)``, pixels outside the image count as background), so a one-pixel blob
  is its own boundary;
* distances are Euclidean between pixel centres, with the row step scaled by ``spacing[0]`` and the column
  step by ``spacing[1]`` (so anisotropic pixels are measured correctly);
* ``d(P→T)`` is, for every boundary pixel of ``P``, the distance to the nearest boundary pixel of ``T``;
* HD95 is ``max(q95(d(P→T)), q95(d(T→P)))`` with linear interpolation between order statistics;
* the Hausdorff distance is ``max(max d(P→T), max d(T→P))``;
* ASSD is the mean of all the distances of both directions together.

Empty-mask rule: both masks empty gives ``0.0``; exactly one empty gives ``NaN`` (the distance is undefined,
not infinite). Summaries exclude ``NaN`` values and count them.

Only the boundary pixels enter the computation (nearest neighbours by a k-d tree), after cropping both masks
to the bounding box of their union, so an 800×540 pair takes a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import binary_erosion
from scipy.spatial import cKDTree

from frugalseg.metrics._checks import as_mask, check_pair, check_spacing

__all__ = ["assd_mm", "boundary", "distance_metrics_mm", "hausdorff_mm", "hd95_mm", "surface_distances_mm"]

_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


def boundary(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a mask: foreground pixels with a 4-connected background (or off-image) neighbour.

    Args:
        mask: non-zero is foreground.

    Returns:
        Boolean boundary mask of the same shape.

    Shape:
        ``mask``: ``(H, W)``. Output: ``(H, W)``.
    """
    m = as_mask(mask, "mask")
    return m & ~binary_erosion(m, structure=_CROSS, border_value=0)


def surface_distances_mm(
    pred: np.ndarray, target: np.ndarray, *, spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Directed boundary distances in mm, both ways.

    Args:
        pred: predicted mask; non-zero is foreground.
        target: reference mask; non-zero is foreground.
        spacing: ``(row_mm, col_mm)`` pixel size in millimetres.

    Returns:
        ``(d_pred_to_target, d_target_to_pred)`` — one float64 distance per boundary pixel of ``pred`` (resp.
        ``target``) to the nearest boundary pixel of the other mask — or ``None`` when either mask is empty.

    Shape:
        ``pred``, ``target``: ``(H, W)``. Outputs: ``(N_pred,)`` and ``(N_target,)`` boundary pixel counts.
    """
    row_mm, col_mm = check_spacing(spacing)
    p = as_mask(pred, "pred")
    t = as_mask(target, "target")
    check_pair(p, t)
    if not p.any() or not t.any():
        return None
    union = p | t
    rows = np.flatnonzero(union.any(axis=1))
    cols = np.flatnonzero(union.any(axis=0))
    # Everything outside the union's bounding box is background, so the crop changes no boundary pixel.
    window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    scale = np.array([row_mm, col_mm])
    p_points = np.argwhere(boundary(p[window])) * scale
    t_points = np.argwhere(boundary(t[window])) * scale
    d_pt = cKDTree(t_points).query(p_points, k=1)[0]
    d_tp = cKDTree(p_points).query(t_points, k=1)[0]
    return np.asarray(d_pt, dtype=np.float64), np.asarray(d_tp, dtype=np.float64)


def distance_metrics_mm(pred: np.ndarray, target: np.ndarray, *, spacing: Sequence[float]) -> dict[str, float]:
    """HD95, ASSD and Hausdorff distance in mm from one pass over the boundaries.

    Empty rule: both masks empty gives ``0.0`` for every value; exactly one empty gives ``NaN``.

    Args:
        pred: predicted mask; non-zero is foreground.
        target: reference mask; non-zero is foreground.
        spacing: ``(row_mm, col_mm)`` pixel size in millimetres.

    Returns:
        ``{"hd95_mm": ..., "assd_mm": ..., "hausdorff_mm": ...}``.

    Shape:
        ``pred``, ``target``: ``(H, W)``.
    """
    distances = surface_distances_mm(pred, target, spacing=spacing)
    if distances is None:
        both_empty = not as_mask(pred, "pred").any() and not as_mask(target, "target").any()
        value = 0.0 if both_empty else float("nan")
        return {"hd95_mm": value, "assd_mm": value, "hausdorff_mm": value}
    d_pt, d_tp = distances
    return {
        "hd95_mm": float(max(np.percentile(d_pt, 95), np.percentile(d_tp, 95))),
        "assd_mm": float((d_pt.sum() + d_tp.sum()) / (d_pt.size + d_tp.size)),
        "hausdorff_mm": float(max(d_pt.max(), d_tp.max())),
    }


def hd95_mm(pred: np.ndarray, target: np.ndarray, *, spacing: Sequence[float]) -> float:
    """95th-percentile symmetric Hausdorff distance between the mask boundaries, in mm.

    ``max(q95(d(P→T)), q95(d(T→P)))`` as in MONAI. Empty rule: both empty ``0.0``; exactly one empty ``NaN``.

    Args:
        pred: predicted mask; non-zero is foreground.
        target: reference mask; non-zero is foreground.
        spacing: ``(row_mm, col_mm)`` pixel size in millimetres.

    Shape:
        ``pred``, ``target``: ``(H, W)``.
    """
    return distance_metrics_mm(pred, target, spacing=spacing)["hd95_mm"]


def assd_mm(pred: np.ndarray, target: np.ndarray, *, spacing: Sequence[float]) -> float:
    """Average symmetric surface distance between the mask boundaries, in mm.

    Mean over the boundary pixels of both masks of the distance to the other boundary. Empty rule: both
    empty ``0.0``; exactly one empty ``NaN``.

    Args:
        pred: predicted mask; non-zero is foreground.
        target: reference mask; non-zero is foreground.
        spacing: ``(row_mm, col_mm)`` pixel size in millimetres.

    Shape:
        ``pred``, ``target``: ``(H, W)``.
    """
    return distance_metrics_mm(pred, target, spacing=spacing)["assd_mm"]


def hausdorff_mm(pred: np.ndarray, target: np.ndarray, *, spacing: Sequence[float]) -> float:
    """(Maximum) symmetric Hausdorff distance between the mask boundaries, in mm.

    Empty rule: both empty ``0.0``; exactly one empty ``NaN``.

    Args:
        pred: predicted mask; non-zero is foreground.
        target: reference mask; non-zero is foreground.
        spacing: ``(row_mm, col_mm)`` pixel size in millimetres.

    Shape:
        ``pred``, ``target``: ``(H, W)``.
    """
    return distance_metrics_mm(pred, target, spacing=spacing)["hausdorff_mm"]
