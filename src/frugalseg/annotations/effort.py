"""How many seconds of an annotator's time each annotation costs: the effort axis of frugalseg's reports.

Sources of the default constants (:class:`EffortModel`), and which are our assumptions:

* **Image tags, 1 s per class asked about.** Bearman et al., "What's the point: semantic segmentation with
  point supervision", ECCV 2016: image-level labels take about 1 s per class (20 s for the 20 PASCAL VOC
  classes).
* **Points, 2.4 s per click.** Bearman et al. 2016: about 2.4 s to click on an object instance.
* **Boxes, 7 s per box.** Papadopoulos et al., "Extreme clicking for efficient object annotation", ICCV 2017:
  7.0 s per box by clicking the four extreme points, against about 35 s (34.5 s) to draw a tight box the
  traditional way (Su et al. 2012). Replace ``box_seconds`` by 34.5 to model box dragging.
* **Scribbles, 10 s per scribbled class (ASSUMPTION).** The order of magnitude of Bearman et al.'s squiggle
  annotation (one free-form stroke per class present, several times the cost of a click); not a measured
  figure for medical images.
* **Full masks, boundary-length based (ASSUMPTION, calibrated).** Tracing an outline costs
  ``object_seconds`` to find and start each object plus ``vertex_seconds`` per polygon vertex, one vertex
  every ``boundary_px_per_vertex`` pixels of boundary. The defaults (2.4 s, 1.5 s, 10 px) are our assumption,
  chosen so that an object with about 500 px of boundary costs about 80 s, the average time per instance
  polygon in COCO (Lin et al., "Microsoft COCO: common objects in context", ECCV 2014: 79 s); Bearman et al.
  report about 240 s per PASCAL image for full supervision.

Costs are per image. Replace the constants with ``dataclasses.replace(EFFORT_MODEL, box_seconds=34.5)`` and
pass ``model=`` to the functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from frugalseg.annotations.kinds import Annotation, Boxes, PartialLabels, Points, Scribbles, Tags
from frugalseg.data.case import IGNORE

__all__ = ["EFFORT_MODEL", "EffortModel", "annotation_seconds", "boundary_length", "full_mask_seconds"]


@dataclass(frozen=True, kw_only=True)
class EffortModel:
    """Seconds per unit of annotation (see the module docstring for the sources).

    Attributes:
        tag_seconds: per class asked about (present or not).
        point_seconds: per click, positive or negative.
        box_seconds: per box (extreme clicking).
        scribble_seconds: per class scribbled (background included).
        object_seconds: per object outlined in a full mask (finding it, starting the outline).
        vertex_seconds: per polygon vertex of an outline.
        boundary_px_per_vertex: pixels of boundary per vertex.
    """

    tag_seconds: float = 1.0
    point_seconds: float = 2.4
    box_seconds: float = 7.0
    scribble_seconds: float = 10.0
    object_seconds: float = 2.4
    vertex_seconds: float = 1.5
    boundary_px_per_vertex: float = 10.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"EffortModel.{name}={value}: expected a finite number >= 0")
        if self.boundary_px_per_vertex <= 0:
            raise ValueError(f"EffortModel.boundary_px_per_vertex={self.boundary_px_per_vertex}: expected > 0")


EFFORT_MODEL = EffortModel()
"""The default effort model."""


def _spacing(spacing: Sequence[float] | None) -> tuple[float, float]:
    if spacing is None:
        return (1.0, 1.0)
    row, col = float(spacing[0]), float(spacing[1])
    if not (math.isfinite(row) and math.isfinite(col) and row > 0 and col > 0):
        raise ValueError(f"spacing={tuple(spacing)}: expected two finite numbers > 0 (row_mm, col_mm)")
    return row, col


def boundary_length(mask: np.ndarray, *, spacing: Sequence[float] | None = None) -> float:
    """Length of the boundary of a binary region (all its components and holes), outside the image counting as 0.

    The length of the pixel edges between the region and the rest, times ``pi / 4``: the edge length of a
    digitised smooth curve overestimates its length by ``4 / pi`` on average over orientations, so a disc of
    radius ``r`` measures about ``2 pi r``.

    Args:
        mask: the region.
        spacing: ``(row_mm, col_mm)``; ``None`` measures in pixels.

    Returns:
        The length in millimetres, or in pixels when ``spacing`` is ``None``.

    Shape:
        mask: ``(H, W)``.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask: expected a 2D (H, W) array, got shape {mask.shape}")
    row_mm, col_mm = _spacing(spacing)
    padded = np.pad(mask, 1)
    across_rows = int(np.count_nonzero(padded[1:, :] != padded[:-1, :]))  # horizontal edges, col_mm long
    across_cols = int(np.count_nonzero(padded[:, 1:] != padded[:, :-1]))  # vertical edges, row_mm long
    return (across_rows * col_mm + across_cols * row_mm) * math.pi / 4


def full_mask_seconds(
    label: np.ndarray, *, spacing: Sequence[float] | None = None, model: EffortModel = EFFORT_MODEL
) -> float:
    """Seconds to outline every foreground object of a full label map.

    Per foreground class: ``object_seconds`` per 8-connected object plus ``vertex_seconds`` per
    ``boundary_px_per_vertex`` pixels of its boundary (:func:`boundary_length`). With ``spacing`` the boundary
    is measured in millimetres and expressed in pixels of the finer axis (the image as shown with square
    pixels), so anisotropic pixels are accounted for; isotropic spacing gives the same cost as none.

    Shape:
        label: ``(H, W)``.
    """
    array = np.asarray(label)
    if array.ndim != 2:
        raise ValueError(f"label: expected a 2D (H, W) class map, got shape {array.shape}")
    row_mm, col_mm = _spacing(spacing)
    finest = min(row_mm, col_mm)
    seconds = 0.0
    for c in np.unique(array):
        if c == 0 or c == IGNORE:
            continue
        mask = array == c
        _, objects = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
        length_px = boundary_length(mask, spacing=(row_mm, col_mm)) / finest
        seconds += objects * model.object_seconds + length_px / model.boundary_px_per_vertex * model.vertex_seconds
    return float(seconds)


def annotation_seconds(
    annotation: Annotation,
    *,
    num_classes: int | None = None,
    spacing: Sequence[float] | None = None,
    model: EffortModel = EFFORT_MODEL,
) -> float:
    """Seconds an annotator spends to make ``annotation`` for one image.

    * tags: ``tag_seconds`` per foreground class asked about: ``num_classes - 1`` when given, else the
      number of distinct tags (at least one question).
    * boxes: ``box_seconds`` per box; points: ``point_seconds`` per click.
    * scribbles: ``scribble_seconds`` per class scribbled (background included).
    * partial labels: :func:`full_mask_seconds` of the annotated classes (with ``spacing``).

    Raises:
        ValueError: an object that is not an annotation, or ``num_classes < 1``.
    """
    if isinstance(annotation, Tags):
        if num_classes is not None:
            if num_classes < 1:
                raise ValueError(f"num_classes={num_classes}: expected >= 1")
            return float(max(0, num_classes - 1) * model.tag_seconds)
        return float(max(1, len(set(annotation.classes))) * model.tag_seconds)
    if isinstance(annotation, Boxes):
        return float(len(annotation.boxes) * model.box_seconds)
    if isinstance(annotation, Points):
        return float(len(annotation.points) * model.point_seconds)
    if isinstance(annotation, Scribbles):
        return float(len(annotation.classes()) * model.scribble_seconds)
    if isinstance(annotation, PartialLabels):
        return full_mask_seconds(annotation.label, spacing=spacing, model=model)
    raise ValueError(f"annotation: expected Tags, Boxes, Points, Scribbles or PartialLabels, got {type(annotation)}")
