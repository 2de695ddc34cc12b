"""Weak annotations: one typed record per kind, simulated annotators, file formats, effort and checks.

* :mod:`~frugalseg.annotations.kinds`: :class:`Tags`, :class:`Boxes`, :class:`Points` (of :class:`Point`,
  ``(row, col)`` order), :class:`Scribbles`, :class:`PartialLabels`; conversions to the losses' inputs.
* :mod:`~frugalseg.annotations.simulate`: ``simulate_*`` annotators from full label maps, seeded.
* :mod:`~frugalseg.annotations.io`: one JSON per dataset (tags, boxes, points), PNG folders (label maps).
* :mod:`~frugalseg.annotations.effort`: seconds per annotation, with cited sources.
* :mod:`~frugalseg.annotations.checks`: problems of annotations; :mod:`~frugalseg.annotations.agreement`:
  inter-annotator agreement.
"""

from frugalseg.annotations.agreement import agreement, box_iou
from frugalseg.annotations.checks import (
    Problem,
    Report,
    check_annotation,
    check_annotations,
    check_case,
    format_report,
)
from frugalseg.annotations.effort import (
    EFFORT_MODEL,
    EffortModel,
    annotation_seconds,
    boundary_length,
    full_mask_seconds,
)
from frugalseg.annotations.io import (
    read_annotations_json,
    read_partial_labels,
    read_scribbles,
    write_annotations_json,
    write_partial_labels,
    write_scribbles,
)
from frugalseg.annotations.kinds import (
    KINDS,
    Annotation,
    Boxes,
    Kind,
    PartialLabels,
    Point,
    Points,
    Scribbles,
    Tags,
    from_case,
    point_pixel,
    points_to_label_map,
)
from frugalseg.annotations.simulate import (
    simulate,
    simulate_boxes,
    simulate_partial,
    simulate_points,
    simulate_scribbles,
    simulate_tags,
)

__all__ = [
    "EFFORT_MODEL",
    "KINDS",
    "Annotation",
    "Boxes",
    "EffortModel",
    "Kind",
    "PartialLabels",
    "Point",
    "Points",
    "Problem",
    "Report",
    "Scribbles",
    "Tags",
    "agreement",
    "annotation_seconds",
    "boundary_length",
    "box_iou",
    "check_annotation",
    "check_annotations",
    "check_case",
    "format_report",
    "from_case",
    "full_mask_seconds",
    "point_pixel",
    "points_to_label_map",
    "read_annotations_json",
    "read_partial_labels",
    "read_scribbles",
    "simulate",
    "simulate_boxes",
    "simulate_partial",
    "simulate_points",
    "simulate_scribbles",
    "simulate_tags",
    "write_annotations_json",
    "write_partial_labels",
    "write_scribbles",
]
