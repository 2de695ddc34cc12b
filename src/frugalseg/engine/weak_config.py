"""Frozen configuration of weakly supervised training, saved as ``weak_config.json`` beside ``config.json``.

The run's :class:`~frugalseg.engine.config.TrainConfig` (model, size, schedule, seed) stays in ``config.json``
unchanged, so ``frugalseg evaluate`` / ``predict`` and :func:`~frugalseg.engine.config.load_config` read weak
runs as they read supervised ones; what is specific to weak labels lives here.

=============  ======================================  ===========================================================
labels         methods (first is the default)          what is trained
=============  ======================================  ===========================================================
``full``       ``dice_ce``                             Dice + CE on full masks (the reference, through this path)
``boxes``      ``tightness``, ``random_walker``,       box MIL tightness + emptiness outside boxes + log-barrier
               ``litemedsam``                          size bounds + gated CRF; or GrabCut-like random-walker
                                                       pseudo-masks, or LiteMedSAM pseudo-masks prompted with
                                                       the boxes, then CE + Dice (+ CRF)
``points``     ``point_loss``, ``random_walker``,      CE at clicks + size bounds + CRF; or pseudo-masks grown
               ``region_growing``                      from the clicks then CE + Dice (+ CRF)
``scribbles``  ``partial_ce``, ``random_walker``,      partial CE (+ Dice on scribbled pixels) + CRF; or random
               ``litemedsam``,                         walker pseudo-masks then CE + Dice; or partial CE, then
               ``random_walker_litemedsam``            LiteMedSAM prompted with the boxes of the predicted
                                                       regions holding strokes, ``refine_rounds`` times; or
                                                       LiteMedSAM prompted with the widened boxes of the random
                                                       walker's stroke-holding regions, then CE + Dice
``tags``       ``cam``, ``litemedsam``                 CAM pseudo-masks, refined ``refine_rounds`` times; or
                                                       LiteMedSAM prompted with the box of each tagged class's
                                                       CAM region, then of the network's prediction each round
``partial``    ``marginal_exclusion``                  marginal CE + marginal Dice + exclusion
``pseudo``     ``partial_ce``                          masks from a folder (``source``), confidence-weighted
=============  ======================================  ===========================================================

``source`` says where the annotations come from: ``"simulate"`` (simulated from the full masks with the
run's seed and the ``box_jitter`` / ``points_*`` / ``partial_groups`` options), ``"dataset"`` (the boxes or
tags the dataset's cases carry), or a path (a JSON file for tags/boxes/points, a PNG folder for scribbles,
partial labels and pseudo-labels).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frugalseg.errors import InputError

__all__ = ["LABEL_KINDS", "METHODS", "WEAK_SCHEMA_VERSION", "WeakConfig", "load_weak_config"]

WEAK_SCHEMA_VERSION = 1
LABEL_KINDS = ("full", "boxes", "points", "scribbles", "tags", "partial", "pseudo")
METHODS: dict[str, tuple[str, ...]] = {
    "full": ("dice_ce",),
    "boxes": ("tightness", "random_walker", "litemedsam"),
    "points": ("point_loss", "random_walker", "region_growing"),
    "scribbles": ("partial_ce", "random_walker", "litemedsam", "random_walker_litemedsam"),
    "tags": ("cam", "litemedsam"),
    "partial": ("marginal_exclusion",),
    "pseudo": ("partial_ce",),
}
PSEUDO_LABEL_METHODS = frozenset({"random_walker", "region_growing", "cam", "litemedsam", "random_walker_litemedsam"})


@dataclass(frozen=True, kw_only=True)
class WeakConfig:
    """What decides a weakly supervised run beyond its :class:`~frugalseg.engine.config.TrainConfig`.

    Attributes:
        labels: annotation kind, one of :data:`LABEL_KINDS`.
        method: one of ``METHODS[labels]``; ``""`` picks the kind's default.
        source: ``"simulate"``, ``"dataset"`` or the path annotations were read from (see the module docstring).
        box_jitter: simulated boxes: side jitter as a fraction of the box side.
        points_per_object: simulated clicks per object.
        negative_points: simulated background clicks per image.
        partial_groups: simulated partial labels: case ``i`` annotates ``partial_groups[i % len]``; empty means
            one foreground class per group, in turn.
        dice_weight: weight of the soft Dice on labelled pixels (pixel-label objectives).
        crf_weight: weight of the gated CRF loss (0 disables it).
        crf_sigma_rgb: CRF intensity kernel width, in z-scored image units.
        crf_sigma_xy: CRF spatial kernel width, pixels of the training size.
        crf_kernel: CRF window side (odd), in down-sampled pixels.
        emptiness_weight: boxes: weight of the outside-box emptiness term.
        smooth_max_alpha: boxes: sharpness of the smooth maximum of the tightness prior.
        size_weight: weight of the size constraint (boxes: log barrier; points: quadratic).
        box_size_fractions: boxes: size bounds as fractions of the union of the class's boxes.
        point_size_fractions: points: size bounds of a clicked class as fractions of the image.
        barrier_t: initial log-barrier ``t``, multiplied by ``barrier_growth`` after every epoch.
        barrier_growth: growth factor of ``t``.
        exclusion_weight: partial labels: weight of the exclusion loss.
        self_training_weight: boxes: weight of box-constrained self-training (CE on the model's own
            confident predictions kept inside their boxes), from ``self_training_start`` on.
        self_training_start: first epoch (0-based) of self-training.
        self_training_confidence: probability a prediction must reach to be a self-training target.
        rw_beta: random walker edge sharpness.
        walker_box_margin: scribbles/random_walker_litemedsam: each walker region's box grows by this
            fraction of its side on every side before it prompts LiteMedSAM
            (:mod:`~frugalseg.engine.weak_foundation`). 0.125 (a quarter wider and taller) was chosen on 30
            usgra training images: LiteMedSAM masks Dice 0.77 / 0.75 (nerve / vessel) with the bare boxes,
            0.81 / 0.83 at 0.125, 0.80 / 0.85 at 0.25; 0.83 / 0.89 with the true boxes.
        box_core: boxes/random_walker: fraction of each box seeded as foreground (central ellipse).
        region_tolerance_scale: region growing tolerance, in standard deviations at the click.
        background_margin: region growing: pixels farther than this fraction of the image side from every
            grown object are background.
        min_confidence: pseudo-label pixels below this confidence are dropped.
        confidence_weighting: weight pseudo-label pixels by their confidence.
        cam_epochs: epochs of the tag classifier.
        cam_thresholds: ``(background, foreground)`` CAM thresholds.
        synthetic_negatives: tile-shuffled negatives for classes tagged in every image.
        refine_rounds: tags, and scribbles with ``litemedsam``: re-estimations of the pseudo-masks from the
            trained segmenter.
        refine_confidence: tags: margin a re-estimated pixel needs to be kept.
    """

    labels: str = "scribbles"
    method: str = ""
    source: str = "simulate"
    box_jitter: float = 0.0
    points_per_object: int = 1
    negative_points: int = 1
    partial_groups: tuple[tuple[int, ...], ...] = ()
    dice_weight: float = 1.0
    crf_weight: float = 0.05
    crf_sigma_rgb: float = 0.5
    crf_sigma_xy: float = 5.0
    crf_kernel: int = 5
    emptiness_weight: float = 1.0
    smooth_max_alpha: float = 4.0
    size_weight: float = 0.1
    box_size_fractions: tuple[float, float] = (0.25, 1.0)
    point_size_fractions: tuple[float, float] = (0.005, 0.6)
    barrier_t: float = 5.0
    barrier_growth: float = 1.1
    exclusion_weight: float = 1.0
    self_training_weight: float = 0.0
    self_training_start: int = 5
    self_training_confidence: float = 0.9
    rw_beta: float = 130.0
    walker_box_margin: float = 0.125
    box_core: float = 0.3
    region_tolerance_scale: float = 2.5
    background_margin: float = 0.1
    min_confidence: float = 0.0
    confidence_weighting: bool = False
    cam_epochs: int = 20
    cam_thresholds: tuple[float, float] = (0.1, 0.3)
    synthetic_negatives: bool = True
    refine_rounds: int = 1
    refine_confidence: float = 0.2
    schema_version: int = WEAK_SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.labels not in LABEL_KINDS:
            raise InputError(f"labels={self.labels!r}: expected one of {', '.join(LABEL_KINDS)}")
        method = self.method or METHODS[self.labels][0]
        if method not in METHODS[self.labels]:
            raise InputError(
                f"method={self.method!r} for labels {self.labels!r}: expected one of {', '.join(METHODS[self.labels])}"
            )
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "partial_groups", tuple(tuple(int(c) for c in g) for g in self.partial_groups))
        for name in ("box_size_fractions", "point_size_fractions", "cam_thresholds"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if self.labels == "pseudo" and self.source in ("simulate", "dataset"):
            raise InputError("labels 'pseudo' needs source=<folder of pseudo-label PNGs>")
        checks = {
            "box_jitter": 0.0 <= self.box_jitter < 0.5,
            "points_per_object": self.points_per_object >= 1,
            "negative_points": self.negative_points >= 0,
            "crf_kernel": self.crf_kernel >= 3 and self.crf_kernel % 2 == 1,
            "box_size_fractions": 0.0 <= self.box_size_fractions[0] <= self.box_size_fractions[1],
            "point_size_fractions": 0.0 <= self.point_size_fractions[0] <= self.point_size_fractions[1] <= 1.0,
            "cam_thresholds": 0.0 <= self.cam_thresholds[0] <= self.cam_thresholds[1] <= 1.0,
            "barrier_t": self.barrier_t > 0 and self.barrier_growth >= 1.0,
            "box_core": 0.0 < self.box_core <= 1.0,
            "cam_epochs": self.cam_epochs >= 1,
            "refine_rounds": self.refine_rounds >= 0,
            "self_training_confidence": 0.0 <= self.self_training_confidence <= 1.0,
            "min_confidence": 0.0 <= self.min_confidence <= 1.0,
        }
        weights = ("dice_weight", "crf_weight", "emptiness_weight", "size_weight", "exclusion_weight")
        nonnegative = (*weights, "self_training_weight", "walker_box_margin")
        checks.update({name: getattr(self, name) >= 0 for name in nonnegative})
        for name, ok in checks.items():
            if not ok:
                raise InputError(f"invalid weak-training setting {name}={getattr(self, name)!r}")

    @property
    def uses_pseudo_labels(self) -> bool:
        """Whether training reads generated pseudo-masks (not the annotations directly)."""
        return self.method in PSEUDO_LABEL_METHODS

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_weak_config(path: str | Path) -> WeakConfig:
    """Read a ``weak_config.json``, refusing unknown schema versions or fields."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: cannot read the weak-training configuration ({error})") from error
    if not isinstance(raw, dict) or raw.get("schema_version") != WEAK_SCHEMA_VERSION:
        got = raw.get("schema_version") if isinstance(raw, dict) else None
        raise InputError(f"{path}: schema version {got!r}, expected {WEAK_SCHEMA_VERSION}")
    known = {field.name for field in dataclasses.fields(WeakConfig)}
    unknown = set(raw) - known
    if unknown:
        raise InputError(f"{path}: unknown weak-training fields {sorted(unknown)}")
    return WeakConfig(**raw)
