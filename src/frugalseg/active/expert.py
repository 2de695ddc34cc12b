"""A simulated expert: returns the ground truth of a selected image and charges the effort it would take.

Effort model (every constant is a field of :class:`CorrectionEffort`; sources and assumptions there).

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

*Box-assisted correction* (an expert with a promptable foundation model at hand, :class:`SimulatedExpert`
``assistant``): instead of editing the network's prediction, the expert draws a tight box per object
(``EFFORT_MODEL.box_seconds`` each), the foundation model outlines each box, and the expert corrects that
outline by the rule above (its review, finds and redraws; no error map). After looking at the network's
prediction this route costs one more ``review_seconds``. The expert takes the cheaper of the routes open to
them: correcting the prediction, the box route, or (with no prediction) drawing from scratch. ASSUMPTION: a
glance at the overlay tells them which is quicker.

A weak label (a box per object, or scribbles) can be acquired instead of the full label; it is simulated
from the truth by :mod:`frugalseg.annotations.simulate` (seeded by the expert's seed and the case id) and
costs :func:`frugalseg.annotations.effort.annotation_seconds`.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from frugalseg.annotations.effort import EFFORT_MODEL, EffortModel, annotation_seconds, full_mask_seconds
from frugalseg.annotations.kinds import Annotation, Boxes, Scribbles
from frugalseg.annotations.simulate import simulate
from frugalseg.data.case import IGNORE, Case

__all__ = [
    "CORRECTION_EFFORT",
    "Acquisition",
    "BoxAssistant",
    "CorrectionCost",
    "CorrectionEffort",
    "ModelPrediction",
    "SimulatedExpert",
    "correction_cost",
    "scratch_seconds",
]

AcquireKind = Literal["full", "boxes", "scribbles"]
BoxAssistant = Callable[[Case, Boxes], np.ndarray]
"""A promptable model's ``(H, W)`` label map of a case from the expert's boxes (box-assisted correction)."""
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


@dataclass(frozen=True)
class ModelPrediction:
    """What the expert is shown for one image: the predicted label map and, if any, the predicted error map.

    Shape:
        ``label: (H, W)`` integer at the image's size; ``error_prob: (H, W)`` float in ``[0, 1]`` or ``None``.
    """

    label: np.ndarray
    error_prob: np.ndarray | None = None


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


@dataclass(frozen=True)
class Acquisition:
    """The label an expert gave for one case and what it cost.

    Attributes:
        case_id: the case.
        kind: ``"full"`` (the true label map), ``"boxes"`` or ``"scribbles"``.
        label: the acquired label map (``IGNORE`` where unlabelled: scribbles), ``None`` for boxes.
        annotation: the weak annotation, ``None`` for a full label.
        seconds: effort charged.
        scratch_seconds: effort of drawing the full label map from scratch (the reference).
        cost: itemised correction cost when a prediction was corrected, else ``None``.
    """

    case_id: str
    kind: AcquireKind
    label: np.ndarray | None
    annotation: Annotation | None
    seconds: float
    scratch_seconds: float
    cost: CorrectionCost | None = None

    def labelled_case(self, case: Case) -> Case:
        """A copy of ``case`` carrying the acquired label (boxes go to ``Case.boxes``, the label map is cleared)."""
        if case.case_id != self.case_id:
            raise ValueError(f"acquisition of {self.case_id!r} applied to case {case.case_id!r}")
        if isinstance(self.annotation, Boxes):
            return dataclasses.replace(case, label=None, boxes=list(self.annotation.boxes))
        return dataclasses.replace(case, label=self.label)

    def record(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays)."""
        return {
            "case_id": self.case_id,
            "kind": self.kind,
            "seconds": self.seconds,
            "scratch_seconds": self.scratch_seconds,
            "cost": None if self.cost is None else self.cost.to_dict(),
        }


@dataclass(frozen=True, kw_only=True)
class SimulatedExpert:
    """An expert who knows the truth of every case (its ``Case.label``) and charges :class:`CorrectionEffort`.

    Attributes:
        effort: the effort constants.
        acquire: ``"full"`` (correct the prediction into the true label map), ``"boxes"`` (a tight box per
            object) or ``"scribbles"``.
        seed: seeds the weak-label simulators, per case (same seed and case id, same annotation).
        assistant: with ``acquire="full"``, the foundation model of box-assisted correction (module docstring);
            ``None``: correct the prediction or draw from scratch only.
    """

    effort: CorrectionEffort = CORRECTION_EFFORT
    acquire: AcquireKind = "full"
    seed: int = 0
    assistant: BoxAssistant | None = None

    def __post_init__(self) -> None:
        if self.acquire not in ("full", "boxes", "scribbles"):
            raise ValueError(f"acquire={self.acquire!r}: expected 'full', 'boxes' or 'scribbles'")

    def annotate(self, case: Case, prediction: ModelPrediction | None = None) -> Acquisition:
        """Label ``case``; a full label costs the cheapest route open to the expert (module docstring).

        Without a prediction or an assistant a full label costs drawing from scratch.

        Raises:
            ValueError: the case has no ground truth to simulate from.
        """
        if case.label is None:
            raise ValueError(f"case {case.case_id}: the simulated expert needs its ground-truth label map")
        truth = np.asarray(case.label)
        scratch = scratch_seconds(truth, spacing=case.spacing, effort=self.effort)
        if self.acquire != "full":
            annotation = simulate(self.acquire, truth, rng=self._rng(case))
            seconds = annotation_seconds(annotation, spacing=case.spacing, model=self.effort.mask)
            label = annotation.label.copy() if isinstance(annotation, Scribbles) else None
            return Acquisition(case.case_id, self.acquire, label, annotation, float(seconds), scratch)
        routes: list[CorrectionCost | None] = []
        if prediction is not None:  # capped at clearing the prediction and drawing from scratch
            error = prediction.error_prob
            routes.append(
                correction_cost(prediction.label, truth, error_prob=error, spacing=case.spacing, effort=self.effort)
            )
        if self.assistant is not None:
            routes.append(self._box_route(case, truth, after_review=prediction is not None))
        cost = min((route for route in routes if route is not None), key=lambda route: route.seconds, default=None)
        if cost is None or (prediction is None and cost.seconds >= scratch):
            return Acquisition(case.case_id, "full", truth.copy(), None, scratch, scratch)
        return Acquisition(case.case_id, "full", truth.copy(), None, cost.seconds, scratch, cost)

    def _rng(self, case: Case) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(case.case_id.encode("utf-8"))])

    def _box_route(self, case: Case, truth: np.ndarray, *, after_review: bool) -> CorrectionCost | None:
        """Tight boxes drawn and the assistant's outline of them corrected (``None``: no object to box);
        ``after_review``: the network's prediction was looked at first (one more review)."""
        assert self.assistant is not None
        boxes = simulate("boxes", truth, rng=self._rng(case))
        if not isinstance(boxes, Boxes) or not boxes.boxes:
            return None
        box_seconds = annotation_seconds(boxes, spacing=case.spacing, model=self.effort.mask)
        cost = correction_cost(self.assistant(case, boxes), truth, spacing=case.spacing, effort=self.effort)
        second_look = self.effort.review_seconds if after_review else 0.0
        return dataclasses.replace(
            cost,
            seconds=cost.seconds + box_seconds + second_look,
            review_seconds=cost.review_seconds + second_look,
            route="box",
            prompt_seconds=float(box_seconds),
        )
