"""The effort model of assisted correction: seconds for an expert to correct a prediction or draw from scratch.

Every constant is a field of :class:`CorrectionEffort` (sources and assumptions there).

*Drawing from scratch* costs :func:`frugalseg.annotations.effort.full_mask_seconds`: per foreground class,
``object_seconds`` per 8-connected object plus ``vertex_seconds`` per ``boundary_px_per_vertex`` pixels of
its boundary (proportional to the full boundary length).

*Assisted correction* of a model's prediction ``y`` against the truth ``t`` costs::

    review_seconds                                    look at the overlay (always paid)
  + sum over regions to fix R:  find(R) + redraw(R)
  + false_alarm_seconds per flagged area that needs no fix

* **Regions to fix**: for each foreground class ``c``, the 8-connected components of the pixels where
  ``(y == c) != (t == c)`` (``IGNORE`` pixels of ``t`` excluded) — pixels to add to or remove from class
  ``c``, class by class as the from-scratch cost counts outlines class by class. A region lying wholly within
  the tolerance of the true boundary of ``c`` is accepted as it is (inter-observer variability), so a
  prediction off by less than two experts disagree costs nothing to fix.
* **Tolerance** of class ``c``: ``max(tolerance_px, tolerance_fraction * D)`` pixels, ``D`` the equivalent
  diameter ``2 sqrt(A / pi)`` of its mean object area ``A``: outline placement varies between experts in
  proportion to the object's size, so the same rule holds for a 20-pixel lumen and a 500-pixel fetal head.
* **redraw**: the stretches of the true outline of ``c`` that lie farther than the tolerance from the
  predicted outline of ``c`` (pixel edges between ``c`` and the rest, the image border counting as outside
  ``c``; each edge's offset is the distance from it to the nearest predicted boundary; measured as
  :func:`~frugalseg.annotations.effort.boundary_length` measures, in pixels of the finer axis), charged at the
  from-scratch rate ``vertex_seconds / boundary_px_per_vertex``. The expert redraws the wrong stretch and the
  editing tool splices it into the outline, as interactive polygon tools are evaluated: a simulated annotator
  moves only the vertices farther than a threshold from the truth (Castrejon et al., Polygon-RNN, CVPR 2017;
  Acuna et al., Polygon-RNN++, CVPR 2018). A region touching no wrong stretch — a false island or a hole in
  the prediction — has nothing to redraw: it is deleted or filled with a click (its find cost). When the
  prediction is empty, the regions are the objects and the redrawn length is their whole boundary, so
  correction costs exactly ``review_seconds`` more than drawing from scratch.
* **find(R)**, guided by the predicted error map ``e``: a region is *flagged* when at least
  ``flag_fraction`` of its pixels have ``e >= flag_threshold``; a flagged region costs
  ``flagged_find_seconds`` to find (the eye goes to the highlighted spot), an unflagged one
  ``unflagged_find_seconds`` (searched for like an object to outline). Without an error map no region is
  flagged.
* **False alarms**: each 8-connected area of ``e >= flag_threshold`` touching no region to fix costs
  ``false_alarm_seconds`` (the expert checks it and moves on).
* **Cap**: when correcting would cost more than ``review_seconds`` plus drawing from scratch, the expert
  clears the prediction and draws from scratch instead.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from frugalseg.annotations.effort import EFFORT_MODEL, EffortModel, full_mask_seconds
from frugalseg.data.case import IGNORE

__all__ = ["CORRECTION_EFFORT", "CorrectionCost", "CorrectionEffort", "correction_cost", "scratch_seconds"]

_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True, kw_only=True)
class CorrectionEffort:
    """Seconds of an expert correcting a prediction (see the module docstring for the rule).

    Attributes:
        review_seconds: per image, to inspect the overlay and accept or start editing it. ASSUMPTION: a few
            seconds per 2D frame (no measured figure for this step; change it to the user's own timing).
        flagged_find_seconds: to find a region to fix that the error map highlights. ASSUMPTION: a glance,
            about the 1 s per yes/no decision of image tags (Bearman et al., ECCV 2016).
        unflagged_find_seconds: to find a region to fix the error map missed; as finding an object to outline
            from scratch (``EFFORT_MODEL.object_seconds``, 2.4 s, Bearman et al. 2016's time to click on an
            object).
        false_alarm_seconds: to check a highlighted area that needs no fix. ASSUMPTION: as a flagged find.
        tolerance_px: a region within the tolerance of the true boundary, and a stretch of the true outline
            within the tolerance of the predicted outline, are left as they are; this is the tolerance's floor
            in pixels. ASSUMPTION: one pixel, below the inter-observer variability of manual outlines.
        tolerance_fraction: the tolerance as a fraction of the object's equivalent diameter (when that is
            larger than ``tolerance_px``). 0.025: half the inter-observer 95% limits of agreement of fetal head
            diameters, below 5% (Napolitano et al., "Scientific basis for standardization of fetal head
            measurements by ultrasound: a reproducibility study", Ultrasound Obstet Gynecol 2016), halved
            because a diameter spans two outline points. 0 keeps the pixel floor alone.
        flag_threshold: error probability at which a pixel is shown as probably wrong.
        flag_fraction: fraction of a region's pixels that must be shown for the region to count as flagged.
        mask: the from-scratch outline costs (object and vertex seconds, pixels per vertex).
    """

    review_seconds: float = 5.0
    flagged_find_seconds: float = 1.0
    unflagged_find_seconds: float = EFFORT_MODEL.object_seconds
    false_alarm_seconds: float = 1.0
    tolerance_px: float = 1.0
    tolerance_fraction: float = 0.025
    flag_threshold: float = 0.5
    flag_fraction: float = 0.5
    mask: EffortModel = EFFORT_MODEL

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name != "mask" and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"CorrectionEffort.{field.name}={value}: expected a finite number >= 0")
        if self.tolerance_fraction >= 0.5:
            raise ValueError(f"CorrectionEffort.tolerance_fraction={self.tolerance_fraction}: expected < 0.5")
        for name in ("flag_threshold", "flag_fraction"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"CorrectionEffort.{name}={getattr(self, name)}: expected a number in (0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CORRECTION_EFFORT = CorrectionEffort()
"""The default correction-effort model."""


@dataclass(frozen=True)
class CorrectionCost:
    """Itemised seconds of one assisted correction (``seconds`` is what is charged).

    ``route``: ``"prediction"`` (the network's prediction corrected) or ``"box"`` (boxes drawn, the foundation
    model's outline corrected; ``prompt_seconds`` is the boxes' time).
    """

    seconds: float
    scratch_seconds: float
    review_seconds: float
    find_seconds: float
    redraw_seconds: float
    false_alarm_seconds: float
    regions: int
    flagged_regions: int
    false_alarms: int
    redrawn_from_scratch: bool
    route: str = "prediction"
    prompt_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _finest(spacing: Sequence[float] | None) -> tuple[float, float, float]:
    row, col = (1.0, 1.0) if spacing is None else (float(spacing[0]), float(spacing[1]))
    if not (math.isfinite(row) and math.isfinite(col) and row > 0 and col > 0):
        raise ValueError(f"spacing={spacing}: expected two finite numbers > 0 (row_mm, col_mm)")
    return row, col, min(row, col)


def _tolerance_px(inside: np.ndarray, effort: CorrectionEffort) -> float:
    """The tolerance for one class's true region: ``max(tolerance_px, tolerance_fraction * D)`` (module docstring)."""
    if not effort.tolerance_fraction:
        return effort.tolerance_px
    _, objects = ndimage.label(inside, structure=_EIGHT)
    diameter = 2.0 * math.sqrt(np.count_nonzero(inside) / max(objects, 1) / math.pi)
    return max(effort.tolerance_px, effort.tolerance_fraction * diameter)


def scratch_seconds(
    target: np.ndarray, *, spacing: Sequence[float] | None = None, effort: CorrectionEffort = CORRECTION_EFFORT
) -> float:
    """Seconds to draw the full label map from scratch (:func:`~frugalseg.annotations.effort.full_mask_seconds`).

    Shape:
        target: ``(H, W)``.
    """
    return full_mask_seconds(target, spacing=spacing, model=effort.mask)


def _off_outline_px(
    inside: np.ndarray, predicted: np.ndarray, tolerance_px: float, spacing: tuple[float, float, float]
) -> float:
    """Length (pixels of the finer axis) of the true outline farther than ``tolerance_px`` from the predicted one.

    The outline is the pixel edges between ``inside`` and the rest (outside the image: not inside). An edge
    whose two pixels the prediction puts on different sides lies on the predicted outline (offset 0); else its
    offset is the smaller distance of its two pixels to the other side of the predicted boundary.
    """
    row_mm, col_mm, finest = spacing
    truth, guess = np.pad(inside, 1), np.pad(predicted, 1)
    depth = _distance_to_boundary(guess)
    lengths = []
    for a, b in ((np.s_[1:, :], np.s_[:-1, :]), (np.s_[:, 1:], np.s_[:, :-1])):  # edges across rows, then columns
        offset = np.where(guess[a] != guess[b], 0.0, np.minimum(depth[a], depth[b]))
        lengths.append(int(np.count_nonzero((truth[a] != truth[b]) & (offset > tolerance_px))))
    return (lengths[0] * col_mm + lengths[1] * row_mm) * math.pi / 4 / finest


def _distance_to_boundary(inside: np.ndarray) -> np.ndarray:
    """Per pixel, the chessboard distance (pixels) to the nearest pixel on the other side of the class boundary.

    Chessboard, so a diagonal neighbour is one pixel away and a one-pixel shift of a curved outline is one pixel
    everywhere (the Euclidean distance would make it up to 1.4 pixels on diagonal stretches).
    """
    far = np.full(inside.shape, np.inf)
    to_outside = ndimage.distance_transform_cdt(inside, metric="chessboard") if (~inside).any() else far
    to_inside = ndimage.distance_transform_cdt(~inside, metric="chessboard") if inside.any() else far
    return np.where(inside, to_outside, to_inside)


def _check_pair(prediction: np.ndarray, target: np.ndarray, error_prob: np.ndarray | None) -> None:
    if prediction.ndim != 2 or prediction.shape != target.shape:
        raise ValueError(
            f"expected prediction and target of one (H, W) shape, got {prediction.shape} and {target.shape}"
        )
    if error_prob is not None and error_prob.shape != target.shape:
        raise ValueError(f"error_prob {error_prob.shape} must match target {target.shape}")


def correction_cost(
    prediction: np.ndarray,
    target: np.ndarray,
    *,
    error_prob: np.ndarray | None = None,
    spacing: Sequence[float] | None = None,
    effort: CorrectionEffort = CORRECTION_EFFORT,
) -> CorrectionCost:
    """Seconds for an expert to correct ``prediction`` into ``target`` (rule in the module docstring).

    Args:
        prediction: the model's label map.
        target: the true label map, ``IGNORE`` where unknown (never counted as an error).
        error_prob: the predicted error map shown to the expert, or ``None``.
        spacing: ``(row_mm, col_mm)``; lengths are expressed in pixels of the finer axis.
        effort: the constants.

    Shape:
        ``prediction, target, error_prob: (H, W)``.
    """
    prediction, target = np.asarray(prediction), np.asarray(target)
    error = None if error_prob is None else np.asarray(error_prob, dtype=np.float64)
    _check_pair(prediction, target, error)
    pixel = _finest(spacing)
    scratch = scratch_seconds(target, spacing=spacing, effort=effort)
    valid = target != IGNORE
    shown = np.zeros(target.shape, dtype=bool) if error is None else (error >= effort.flag_threshold) & valid
    to_fix = np.zeros(target.shape, dtype=bool)
    regions = flagged = 0
    redraw_px = 0.0
    classes = {int(c) for c in np.unique(np.concatenate([np.unique(prediction), np.unique(target)]))}
    for c in sorted(classes - {0, IGNORE}):
        inside = target == c
        wrong = ((prediction == c) != inside) & valid
        if not wrong.any():
            continue
        components, count = ndimage.label(wrong, structure=_EIGHT)
        tolerance = _tolerance_px(inside, effort)
        depth = _distance_to_boundary(inside)
        deepest = ndimage.maximum(depth, components, index=np.arange(1, count + 1))
        for index in np.flatnonzero(np.asarray(deepest) > tolerance) + 1:
            region = components == index
            regions += 1
            to_fix |= region
            flagged += int(shown[region].mean() >= effort.flag_fraction)
        redraw_px += _off_outline_px(inside, prediction == c, tolerance, pixel)
    alarms = 0
    if error is not None and shown.any():
        areas, count = ndimage.label(shown, structure=_EIGHT)
        touched = np.unique(areas[to_fix & shown])
        alarms = count - int(np.count_nonzero(touched))
    find = flagged * effort.flagged_find_seconds + (regions - flagged) * effort.unflagged_find_seconds
    redraw = redraw_px / effort.mask.boundary_px_per_vertex * effort.mask.vertex_seconds
    false_alarm = alarms * effort.false_alarm_seconds
    total = effort.review_seconds + find + redraw + false_alarm
    capped = total > effort.review_seconds + scratch
    return CorrectionCost(
        seconds=float(effort.review_seconds + scratch if capped else total),
        scratch_seconds=float(scratch),
        review_seconds=float(effort.review_seconds),
        find_seconds=float(find),
        redraw_seconds=float(redraw),
        false_alarm_seconds=float(false_alarm),
        regions=regions,
        flagged_regions=flagged,
        false_alarms=alarms,
        redrawn_from_scratch=bool(capped),
    )
