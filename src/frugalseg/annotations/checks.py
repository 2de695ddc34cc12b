"""Quality checks of weak annotations (agreement between annotators is in :mod:`.agreement`).

The checks never drop or repair anything: every problem found becomes a :class:`Problem` naming the case,
the annotation kind and what is wrong, and :func:`check_annotations` gathers them in a :class:`Report`
(print it with :func:`format_report`). What is checked:

* every kind: class labels outside the class list (``num_classes``), duplicates;
* boxes: non-finite coordinates, empty boxes (``xmin >= xmax`` or ``ymin >= ymax``), boxes leaving the image;
* points: non-finite coordinates, points outside the image, two clicks on one pixel with different labels;
* scribbles and partial labels: a size different from the image's, values that are neither a class nor
  ``IGNORE``, scribbles with no pixel, partial labels holding a class they do not declare annotated;
* between kinds of one case: positive points and foreground scribble pixels outside every box of their class,
  classes annotated by boxes/points/scribbles/partial labels but absent from the tags.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from frugalseg.annotations.kinds import (
    Annotation,
    Boxes,
    PartialLabels,
    Points,
    Scribbles,
    Tags,
    from_case,
    point_pixel,
)
from frugalseg.data.case import IGNORE, Box, Case, Dataset

__all__ = [
    "Problem",
    "Report",
    "check_annotation",
    "check_annotations",
    "check_case",
    "format_report",
]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the annotation(s) of one case."""

    case_id: str
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.case_id} [{self.kind}]: {self.message}"


@dataclass(frozen=True)
class Report:
    """The problems found in a set of annotations.

    Attributes:
        problems: every problem, case by case.
        num_cases: cases checked.
        annotations: number of annotations checked, by kind.
    """

    problems: tuple[Problem, ...]
    num_cases: int
    annotations: Mapping[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems

    def by_case(self) -> dict[str, list[Problem]]:
        """Problems grouped by case id (cases without problems absent)."""
        grouped: dict[str, list[Problem]] = {}
        for problem in self.problems:
            grouped.setdefault(problem.case_id, []).append(problem)
        return grouped


def _box_text(box: Box) -> str:
    return f"({box.xmin:g}, {box.ymin:g}, {box.xmax:g}, {box.ymax:g}) of class {box.label}"


def _class_range(num_classes: int, *, background: bool) -> str:
    return f"[{0 if background else 1}, {num_classes})"


def _known(label: int, num_classes: int, *, background: bool) -> bool:
    return (0 if background else 1) <= label < num_classes


def _check_map(
    label: np.ndarray, what: str, case_id: str, kind: str, num_classes: int, shape: tuple[int, int] | None
) -> list[Problem]:
    problems = []
    if shape is not None and tuple(label.shape) != shape:
        problems.append(
            Problem(
                case_id, kind, f"{what} is {label.shape[0]}x{label.shape[1]} but the image is {shape[0]}x{shape[1]}"
            )
        )
    values = np.flatnonzero(np.bincount(label.ravel(), minlength=256))
    unknown = [int(v) for v in values if v >= num_classes and v != IGNORE]
    if unknown:
        problems.append(
            Problem(
                case_id,
                kind,
                f"{what} holds unknown labels {unknown}; expected classes [0, {num_classes}) or {IGNORE} (unlabelled)",
            )
        )
    return problems


def check_annotation(
    annotation: Annotation, *, case_id: str, num_classes: int, shape: Sequence[int] | None = None
) -> list[Problem]:
    """Problems of one annotation on its own (see the module docstring).

    Args:
        annotation: any annotation kind.
        case_id: named in the problems.
        num_classes: classes ``0..num_classes-1`` are known.
        shape: ``(H, W)`` of the image, or ``None`` when unknown (no inside-the-image checks then, except
            the size of label maps).

    Returns:
        The problems, in a stable order (empty when all is well).
    """
    if num_classes < 2:
        raise ValueError(f"num_classes={num_classes}: expected >= 2 (background and one class)")
    size = (int(shape[0]), int(shape[1])) if shape is not None else None
    kind = annotation.kind
    problems: list[Problem] = []

    def add(message: str) -> None:
        problems.append(Problem(case_id, kind, message))

    if isinstance(annotation, Tags):
        for tag, count in Counter(annotation.classes).items():
            if tag == 0:
                add("tag 0 is background; tags name foreground classes")
            elif not _known(tag, num_classes, background=False):
                add(f"tag {tag} is not a class; expected {_class_range(num_classes, background=False)}")
            if count > 1:
                add(f"tag {tag} is given {count} times")
    elif isinstance(annotation, Boxes):
        seen: dict[tuple[float, ...], int] = {}
        for index, box in enumerate(annotation.boxes):
            coords = (float(box.xmin), float(box.ymin), float(box.xmax), float(box.ymax))
            if not _known(box.label, num_classes, background=False):
                add(
                    f"box {index} {_box_text(box)}: label {box.label} is not a foreground class "
                    f"{_class_range(num_classes, background=False)}"
                )
            if not all(math.isfinite(v) for v in coords):
                add(f"box {index} {_box_text(box)} has a non-finite (NaN or infinite) coordinate")
                continue
            if coords[2] <= coords[0] or coords[3] <= coords[1]:
                add(f"box {index} {_box_text(box)} is empty; expected xmin < xmax and ymin < ymax")
            if size is not None and (coords[0] < 0 or coords[1] < 0 or coords[2] > size[1] or coords[3] > size[0]):
                add(f"box {index} {_box_text(box)} leaves the {size[0]}x{size[1]} (HxW) image")
            key = (*coords, float(box.label))
            if key in seen:
                add(f"box {index} repeats box {seen[key]}")
            seen.setdefault(key, index)
    elif isinstance(annotation, Points):
        at: dict[tuple[int, int], tuple[int, int]] = {}
        for index, point in enumerate(annotation.points):
            text = f"point {index} (row={point.row:g}, col={point.col:g}, label={point.label})"
            if not _known(point.label, num_classes, background=True):
                add(f"{text}: label {point.label} is not a class {_class_range(num_classes, background=True)}")
            if not (math.isfinite(point.row) and math.isfinite(point.col)):
                add(f"{text} has a non-finite (NaN or infinite) coordinate")
                continue
            pixel = point_pixel(point)
            if size is not None and not (0 <= pixel[0] < size[0] and 0 <= pixel[1] < size[1]):
                add(f"{text} lies outside the {size[0]}x{size[1]} (HxW) image")
            if pixel in at:
                other, other_label = at[pixel]
                if other_label != point.label:
                    add(f"{text} and point {other} click the same pixel with labels {other_label} and {point.label}")
                else:
                    add(f"point {index} repeats point {other}")
            else:
                at[pixel] = (index, point.label)
    elif isinstance(annotation, Scribbles):
        problems += _check_map(annotation.label, "scribble map", case_id, kind, num_classes, size)
        if not annotation.valid_mask.any():
            add("no pixel is scribbled")
    elif isinstance(annotation, PartialLabels):
        problems += _check_map(annotation.label, "partial label map", case_id, kind, num_classes, size)
        for c in annotation.annotated_classes:
            if c >= num_classes:
                add(f"annotated class {c} is not a class; expected {_class_range(num_classes, background=False)}")
        present = np.flatnonzero(np.bincount(annotation.label.ravel(), minlength=256))
        undeclared = [int(v) for v in present if 0 < v < num_classes and v not in annotation.annotated_classes]
        if undeclared:
            add(
                f"label map holds classes {undeclared} that annotated_classes {list(annotation.annotated_classes)} "
                "does not list (classes not annotated must be background)"
            )
    else:
        raise ValueError(f"annotation: expected an annotation kind, got {type(annotation).__name__}")
    return problems


def _pixel_span(box: Box) -> tuple[int, int, int, int] | None:
    """Whole-pixel ``(x0, y0, x1, y1)`` of a finite box (as the losses widen it), or ``None``."""
    coords = (float(box.xmin), float(box.ymin), float(box.xmax), float(box.ymax))
    if not all(math.isfinite(v) for v in coords):
        return None
    return math.floor(coords[0]), math.floor(coords[1]), math.ceil(coords[2]), math.ceil(coords[3])


def _inside_any(row: int, col: int, spans: list[tuple[int, int, int, int]]) -> bool:
    return any(x0 <= col < x1 and y0 <= row < y1 for x0, y0, x1, y1 in spans)


def _classes_annotated(annotation: Annotation) -> set[int]:
    if isinstance(annotation, Boxes):
        return {box.label for box in annotation.boxes}
    if isinstance(annotation, Points):
        return {p.label for p in annotation.points if p.label > 0}
    if isinstance(annotation, Scribbles):
        return {c for c in annotation.classes() if c > 0}
    if isinstance(annotation, PartialLabels):
        present = np.flatnonzero(np.bincount(annotation.label.ravel(), minlength=256))
        return {int(c) for c in present if 0 < c < IGNORE}
    return set()


def check_case(
    annotations: Mapping[str, Annotation],
    *,
    case_id: str,
    num_classes: int,
    shape: Sequence[int] | None = None,
) -> list[Problem]:
    """Problems of each annotation of one case (:func:`check_annotation`) plus those between its kinds.

    Args:
        annotations: ``{kind: annotation}`` of the case.
        case_id: named in the problems.
        num_classes: classes ``0..num_classes-1`` are known.
        shape: ``(H, W)`` of the image; ``None`` takes the size of a scribble or partial label map if any.
    """
    if shape is None:
        shape = next((a.shape for a in annotations.values() if isinstance(a, Scribbles | PartialLabels)), None)
    problems: list[Problem] = []
    for key, annotation in annotations.items():
        if key != annotation.kind:
            problems.append(Problem(case_id, key, f"entry '{key}' holds a {annotation.kind} annotation"))
        problems += check_annotation(annotation, case_id=case_id, num_classes=num_classes, shape=shape)

    boxes = annotations.get("boxes")
    if isinstance(boxes, Boxes):
        spans_by_class: dict[int, list[tuple[int, int, int, int]]] = {}
        for box in boxes.boxes:
            span = _pixel_span(box)
            if span is not None:
                spans_by_class.setdefault(box.label, []).append(span)
        points = annotations.get("points")
        if isinstance(points, Points):
            for index, point in enumerate(points.points):
                if not point.positive or not (math.isfinite(point.row) and math.isfinite(point.col)):
                    continue
                row, col = point_pixel(point)
                if not _inside_any(row, col, spans_by_class.get(point.label, [])):
                    problems.append(
                        Problem(
                            case_id,
                            "boxes+points",
                            f"positive point {index} (row={point.row:g}, "
                            f"col={point.col:g}) of class {point.label} lies in no box of its class",
                        )
                    )
        scribbles = annotations.get("scribbles")
        if isinstance(scribbles, Scribbles):
            for c in scribbles.classes():
                if c == 0 or c >= num_classes:
                    continue
                covered = np.zeros(scribbles.shape, dtype=bool)
                for x0, y0, x1, y1 in spans_by_class.get(c, []):
                    covered[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = True
                outside = int(np.count_nonzero((scribbles.label == c) & ~covered))
                if outside:
                    problems.append(
                        Problem(
                            case_id,
                            "boxes+scribbles",
                            f"{outside} scribble pixels of class {c} lie in no box of class {c}",
                        )
                    )
    tags = annotations.get("tags")
    if isinstance(tags, Tags):
        tagged = set(tags.classes)
        for key, annotation in annotations.items():
            if isinstance(annotation, Tags):
                continue
            missing = sorted(c for c in _classes_annotated(annotation) if c not in tagged and c < num_classes)
            if missing:
                problems.append(
                    Problem(
                        case_id, f"tags+{annotation.kind}", f"classes {missing} are annotated by {key} but not tagged"
                    )
                )
    return problems


def check_annotations(
    cases: Dataset | Iterable[Case] | Mapping[str, Mapping[str, Annotation]],
    *,
    num_classes: int,
    shapes: Mapping[str, Sequence[int]] | None = None,
    tags: bool = False,
) -> Report:
    """Check every annotation of a dataset.

    Args:
        cases: a :class:`~frugalseg.data.case.Dataset` or cases (their boxes, their label maps, and their
            tags when ``tags=True``; see :func:`~frugalseg.annotations.kinds.from_case`), or
            ``{case_id: {kind: annotation}}`` as :func:`~frugalseg.annotations.io.read_annotations_json` returns.
        num_classes: classes ``0..num_classes-1`` are known.
        shapes: ``{case_id: (H, W)}`` image sizes for a mapping (cases know theirs).
        tags: whether ``Case.tags`` are segmentation classes to check.

    Returns:
        The :class:`Report` (``report.ok`` when nothing is wrong).
    """
    problems: list[Problem] = []
    counts: Counter[str] = Counter()
    items: list[tuple[str, Mapping[str, Annotation], Sequence[int] | None, Case | None]]
    if isinstance(cases, Mapping):
        sizes = shapes or {}
        items = [(str(case_id), by_kind, sizes.get(case_id), None) for case_id, by_kind in cases.items()]
    else:
        listed = cases.cases if isinstance(cases, Dataset) else list(cases)
        items = [(case.case_id, from_case(case, tags=tags), case.shape, case) for case in listed]
    for case_id, by_kind, shape, case in items:
        counts.update(annotation.kind for annotation in by_kind.values())
        problems += check_case(by_kind, case_id=case_id, num_classes=num_classes, shape=shape)
        if case is not None and case.label is not None:
            label = np.asarray(case.label)
            problems += _check_map(label.astype(np.uint8), "label map", case_id, "label", num_classes, case.shape)
    return Report(problems=tuple(problems), num_cases=len(items), annotations=dict(counts))


def format_report(report: Report, *, max_problems: int = 50) -> str:
    """The report as text: a summary line, then one line per problem (at most ``max_problems``)."""
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(report.annotations.items())) or "none"
    total = sum(report.annotations.values())
    if report.ok:
        return f"Annotations: {report.num_cases} cases, {total} annotations ({kinds}): no problem found"
    lines = [
        f"Annotations: {report.num_cases} cases, {total} annotations ({kinds}): {len(report.problems)} problems "
        f"in {len(report.by_case())} cases"
    ]
    lines += [f"  {problem}" for problem in report.problems[:max_problems]]
    if len(report.problems) > max_problems:
        lines.append(f"  ... and {len(report.problems) - max_problems} more")
    return "\n".join(lines)
