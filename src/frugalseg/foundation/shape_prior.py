"""Shape prior: an object's mask replaced by the ellipse fitted to its outline.

For objects that are ellipses by definition (HC18 annotates each fetal head as one). The outline of the mask's
largest component is fitted by direct least squares (Fitzgibbon, Pilu and Fisher 1999, in the numerically
stable form of Halir and Flusser 1998). Outline points within ``tolerance`` pixels of a side of the box the
object was decoded from, or of the image border, are left out: there the outline follows the prompt or the
frame, not the object (a box side drawn inside a head cuts it straight), and the ellipse carries the object on
past the cut. An object keeps its own mask when fewer than :data:`MIN_POINTS` outline points remain, when the
conic is not an ellipse, or when the ellipse's area inside the image is not within a factor
:data:`MAX_AREA_RATIO` of the mask's.

Chosen on 40 HC18 training images (not the test set), LiteMedSAM zero-shot Dice, tight box / sides jittered by
10% (the benchmark's prompts, :func:`frugalseg.engine.foundation_bench.prompt_variants`): 0.955 / 0.938 ->
0.961 / 0.945 with the ellipse; with box fitting (:mod:`.box_fit`) 0.969 / 0.940 -> 0.973 / 0.947. A tolerance
of 0.5, 1 or 2 model pixels changes these by at most 0.001.

The agreement of a mask with its ellipse also tells a box drawn inside the object from one that holds it: cut
by a box side, LiteMedSAM's mask follows the side and bends away from the ellipse. With *box slack* the
segmenter also decodes each tight box widened on every side by the given fractions of its size and keeps the
widened box whose mask is most ellipse-like when it beats the given box's agreement by more than
:data:`AGREEMENT_MARGIN`. Chosen on two sets of HC18 training images (40 and 60, never the test set), box
fitting and ellipse on, tight / jittered: slack 0.05 and 0.1 took 0.973 / 0.947 to 0.973 / 0.956 and
0.965 / 0.940 to 0.966 / 0.944; without the margin the tight boxes lost 0.002 on both sets.

*Box snapping* uses the tightness of a box annotation without another decoder pass: each side of the fitted
ellipse that stops a little inside its tight box, or runs a little past it, is moved onto the box side
(:func:`snapped_extent`; the ellipse is stretched along each axis). With the segmenter decoding a box widened by 5%
of its size and snapping sides within 3% inside or 2% outside, one pass per object gave 0.974 / 0.951 and
0.978 / 0.952 on two sets of 60 HC18 training images (README, "Box widening and snapping").
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from skimage.measure import find_contours

__all__ = [
    "AGREEMENT_MARGIN",
    "EDGE_LOGIT",
    "MAX_AREA_RATIO",
    "MIN_POINTS",
    "SHAPES",
    "check_shape",
    "ellipse_extent",
    "ellipse_logits",
    "ellipse_mask",
    "fit_conic",
    "fit_ellipses",
    "outline",
    "snapped_extent",
]

SHAPES = ("none", "ellipse")
AGREEMENT_MARGIN = 0.005
"""Agreement (:func:`fit_ellipses`) by which a widened box's ellipse must beat the given box's to replace it."""
MIN_POINTS = 20
"""Fewest outline points an ellipse is fitted to."""
MAX_AREA_RATIO = 2.0
"""Largest ratio between the ellipse's and the mask's areas (either way) for the ellipse to replace the mask."""
EDGE_LOGIT = 1e-3
"""Logit given to a pixel the ellipse moves across the decision boundary (just inside or just outside)."""


def check_shape(shape: str, box_slack: tuple[float, ...] = (), box_snap: tuple[float, float] = (0.0, 0.0)) -> None:
    """Raise ``ValueError`` (one line) for an unknown shape, or box slack or snap without a shape to act on."""
    if shape not in SHAPES:
        raise ValueError(f"shape {shape!r}: expected one of {SHAPES}")
    if len(box_snap) != 2 or any(not 0 <= fraction < 1 for fraction in box_snap):
        raise ValueError(f"box snap {box_snap}: expected two fractions of the box's size in [0, 1) (inside, outside)")
    if any(box_snap) and shape == "none":
        raise ValueError("box snap moves a fitted shape onto the box: it needs a shape prior (shape 'ellipse')")
    if any(not 0 < slack <= 1 for slack in box_slack):
        raise ValueError(f"box slack {box_slack}: each must be a fraction of the box's size in (0, 1]")
    if box_slack and shape == "none":
        raise ValueError("box slack needs a shape prior to choose between the boxes (shape 'ellipse')")


def outline(mask: np.ndarray) -> np.ndarray:
    """``(K, 2)`` xy points on the outline of the largest 8-connected component of an ``(H, W)`` bool mask
    (half-way between its pixels and the background; empty when the mask is). Works on the mask's bounding box."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return np.zeros((0, 2))
    crop = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    components, _ = ndimage.label(crop, structure=np.ones((3, 3)))
    largest = components == 1 + int(np.argmax(np.bincount(components.ravel())[1:]))
    contours = find_contours(np.pad(largest, 1).astype(np.float32), 0.5)
    rows_cols = max(contours, key=len) - 1.0 + np.array([rows[0], cols[0]])  # the outer outline is the longest
    return rows_cols[:, ::-1].copy()


def fit_conic(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Direct least-squares ellipse through ``(K, 2)`` xy points.

    Returns ``(coefficients, centre, scale)``: the conic ``a u^2 + b uv + c v^2 + d u + e v + f`` in the
    normalised coordinates ``(u, v) = (xy - centre) / scale``, or ``None`` when no ellipse fits (too few or
    collinear points).
    """
    if len(points) < 6:
        return None
    centre = points.mean(axis=0)
    scale = float(np.sqrt(((points - centre) ** 2).sum(axis=1).mean())) or 1.0
    u, v = ((points - centre) / scale).T
    quadratic = np.stack([u * u, u * v, v * v], axis=1)
    linear = np.stack([u, v, np.ones_like(u)], axis=1)
    s1, s2, s3 = quadratic.T @ quadratic, quadratic.T @ linear, linear.T @ linear
    try:
        reduce = -np.linalg.solve(s3, s2.T)
        scatter = s1 + s2 @ reduce
        constrained = np.stack([scatter[2] / 2, -scatter[1], scatter[0] / 2])  # C^-1 scatter, C: 4ac - b^2
        _, vectors = np.linalg.eig(constrained)
    except np.linalg.LinAlgError:
        return None
    vectors = np.real(vectors)
    ellipse = 4 * vectors[0] * vectors[2] - vectors[1] ** 2 > 0
    if not ellipse.any():
        return None
    quadratic_part = vectors[:, np.argmax(ellipse)]
    return np.concatenate([quadratic_part, reduce @ quadratic_part]), centre, scale


def ellipse_extent(conic: tuple[np.ndarray, np.ndarray, float]) -> np.ndarray | None:
    """``(x0, y0, x1, y1)``: the extremes of the ellipse of a conic from :func:`fit_conic`, in pixels (``None``
    for a degenerate one)."""
    (a, b, c, d, e, f), centre, scale = conic
    # the extremes of u (v) on the conic solve a quadratic: where its gradient along v (u) vanishes
    span_u = np.roots([4 * a * c - b * b, 4 * c * d - 2 * b * e, 4 * c * f - e * e])
    span_v = np.roots([4 * a * c - b * b, 4 * a * e - 2 * b * d, 4 * a * f - d * d])
    if np.iscomplexobj(span_u) or np.iscomplexobj(span_v) or len(span_u) < 2 or len(span_v) < 2:
        return None
    (x0, x1), (y0, y1) = centre[0] + scale * np.sort(span_u), centre[1] + scale * np.sort(span_v)
    return np.array([x0, y0, x1, y1])


def snapped_extent(extent: np.ndarray, box: np.ndarray, snap: tuple[float, float]) -> np.ndarray:
    """``extent`` (x0, y0, x1, y1) with each side near a side of the tight ``box`` moved onto it: a side that
    stops inside the box by at most ``snap[0]`` of the box's size, or runs past it by at most ``snap[1]``. The
    box is max exclusive, so its outline runs half a pixel outside its first and last pixels."""
    target = np.asarray(box, dtype=np.float64) - 0.5
    sizes = np.array([box[2] - box[0], box[3] - box[1]] * 2, dtype=np.float64)
    short = (target - extent) * np.array([-1.0, -1.0, 1.0, 1.0])  # > 0: the ellipse stops inside the side
    near = ((short > 0) & (short <= snap[0] * sizes)) | ((short < 0) & (-short <= snap[1] * sizes))
    return np.where(near, target, extent)


def ellipse_mask(
    conic: tuple[np.ndarray, np.ndarray, float], shape: tuple[int, int], *, onto: np.ndarray | None = None
) -> np.ndarray:
    """The ``(H, W)`` bool pixels inside a conic from :func:`fit_conic` (evaluated over its bounding box only);
    with ``onto`` (x0, y0, x1, y1), the ellipse stretched along each axis to span that extent."""
    (a, b, c, d, e, f), centre, scale = conic
    out = np.zeros(shape, dtype=bool)
    extent = ellipse_extent(conic)
    if extent is None:
        return out  # a degenerate (point or empty) ellipse holds no pixel centre
    span = extent if onto is None else onto
    left, right = max(int(np.floor(span[0])), 0), min(int(np.ceil(span[2])) + 1, shape[1])
    top, bottom = max(int(np.floor(span[1])), 0), min(int(np.ceil(span[3])) + 1, shape[0])
    if left >= right or top >= bottom:
        return out
    y, x = np.mgrid[top:bottom, left:right].astype(np.float64)
    if onto is not None:  # back to the fitted ellipse's frame, axis by axis
        x = extent[0] + (x - onto[0]) * (extent[2] - extent[0]) / (onto[2] - onto[0])
        y = extent[1] + (y - onto[1]) * (extent[3] - extent[1]) / (onto[3] - onto[1])
    u, v = (x - centre[0]) / scale, (y - centre[1]) / scale
    value = a * u * u + b * u * v + c * v * v + d * u + e * v + f
    # the inside has the sign of the value at the ellipse's centre (where 2au + bv + d = bu + 2cv + e = 0)
    middle_u, middle_v = np.linalg.solve(np.array([[2 * a, b], [b, 2 * c]]), -np.array([d, e]))
    inside_sign = np.sign(a * middle_u**2 + b * middle_u * middle_v + c * middle_v**2 + d * middle_u + e * middle_v + f)
    out[top:bottom, left:right] = value * inside_sign > 0
    return out


def fit_ellipses(
    masks: np.ndarray,
    boxes: np.ndarray | None,
    *,
    tolerance: float,
    snap_to: np.ndarray | None = None,
    snap: tuple[float, float] = (0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Each mask replaced by the ellipse fitted to its outline, except near its box and the image border.

    Args:
        masks: ``(N, H, W)`` bool.
        boxes: ``(N, 4)`` inclusive xyxy boxes the objects were decoded from, in the masks' pixels, or ``None``.
        tolerance: pixels from a box side or the border within which outline points are left out.
        snap_to: ``(N, 4)`` tight boxes (max exclusive, the masks' pixels) the ellipses are snapped to
            (:func:`snapped_extent`, with ``within=snap``), or ``None``.

    Returns:
        ``(N, H, W)`` bool, where an object the module docstring's checks refuse keeps its mask, and ``(N,)``
        each object's agreement: the Dice of its mask and its ellipse, 0 where refused (how ellipse-like the
        mask is, a quality score needing no ground truth).
    """
    height, width = masks.shape[1:]
    out, agreement = masks.copy(), np.zeros(len(masks))
    for index, mask in enumerate(masks):
        points = outline(mask)
        x, y = points.T
        away = (x > tolerance) & (y > tolerance) & (x < width - 1 - tolerance) & (y < height - 1 - tolerance)
        if boxes is not None:
            for side, coordinate in zip(boxes[index], (x, y, x, y), strict=True):
                away &= np.abs(coordinate - side) > tolerance
        conic = fit_conic(points[away]) if away.sum() >= MIN_POINTS else None
        if conic is None:
            continue
        ellipse = ellipse_mask(conic, (height, width))
        area, fitted = max(int(mask.sum()), 1), int(ellipse.sum())
        if area / MAX_AREA_RATIO <= fitted <= area * MAX_AREA_RATIO:
            agreement[index] = 2.0 * (mask & ellipse).sum() / (area + fitted)
            extent = ellipse_extent(conic)
            if snap_to is not None and any(snap) and extent is not None:
                ellipse = ellipse_mask(conic, (height, width), onto=snapped_extent(extent, snap_to[index], snap))
            out[index] = ellipse
    return out, agreement


def ellipse_logits(
    logits: torch.Tensor,
    boxes: np.ndarray | None,
    *,
    tolerance: float,
    snap_to: np.ndarray | None = None,
    snap: tuple[float, float] = (0.0, 0.0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, H, W)`` logits moved so that ``logits > 0`` is :func:`fit_ellipses`' mask: kept where the model
    agrees with the ellipse, :data:`EDGE_LOGIT` inside it and ``-EDGE_LOGIT`` outside it where not. Also returns
    the ``(N,)`` agreement of :func:`fit_ellipses`."""
    inside, agreement = fit_ellipses((logits > 0).numpy(), boxes, tolerance=tolerance, snap_to=snap_to, snap=snap)
    shaped = torch.where(torch.from_numpy(inside), logits.clamp(min=EDGE_LOGIT), logits.clamp(max=-EDGE_LOGIT))
    return shaped, torch.from_numpy(agreement).float()
