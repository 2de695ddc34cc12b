"""A simulated expert: returns the ground truth of a selected image and charges the effort it would take.

A full label costs the correction of the model's prediction shown to the expert, or drawing from scratch
without one, by the effort model of :mod:`frugalseg.active.correction`.

*Box-assisted correction* (an expert with a promptable foundation model at hand, :class:`SimulatedExpert`
``assistant``): instead of editing the network's prediction, the expert draws a tight box per object
(``EffortModel.box_seconds`` each), the foundation model outlines each box, and the expert corrects that
outline by the same rule (its review, finds and redraws; no error map). After looking at the network's
prediction this route costs one more ``review_seconds``. The expert takes the cheaper of the routes open to
them: correcting the prediction, the box route, or (with no prediction) drawing from scratch. ASSUMPTION: a
glance at the overlay tells them which is quicker.

A weak label (a box per object, or scribbles) can be acquired instead of the full label; it is simulated
from the truth by :mod:`frugalseg.annotations.simulate` (seeded by the expert's seed and the case id) and
costs :func:`frugalseg.annotations.effort.annotation_seconds`.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from frugalseg.active.correction import (
    CORRECTION_EFFORT,
    CorrectionCost,
    CorrectionEffort,
    correction_cost,
    scratch_seconds,
)
from frugalseg.annotations.effort import annotation_seconds
from frugalseg.annotations.kinds import Annotation, Boxes, Scribbles
from frugalseg.annotations.simulate import simulate
from frugalseg.data.case import Case

__all__ = ["Acquisition", "BoxAssistant", "ModelPrediction", "SimulatedExpert"]

AcquireKind = Literal["full", "boxes", "scribbles"]
BoxAssistant = Callable[[Case, Boxes], np.ndarray]
"""A promptable model's ``(H, W)`` label map of a case from the expert's boxes (box-assisted correction)."""


@dataclass(frozen=True)
class ModelPrediction:
    """What the expert is shown for one image: the predicted label map and, if any, the predicted error map.

    Shape:
        ``label: (H, W)`` integer at the image's size; ``error_prob: (H, W)`` float in ``[0, 1]`` or ``None``.
    """

    label: np.ndarray
    error_prob: np.ndarray | None = None


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
