"""The weak annotations of ONE image, one frozen dataclass per kind, each naming its ``kind``.

=================  ==========================================================================================
kind               what the annotator gave
=================  ==========================================================================================
``"tags"``         :class:`Tags`: the foreground classes present in the image (image-level labels).
``"boxes"``        :class:`Boxes`: one :class:`~frugalseg.data.case.Box` per object (pixel ``xyxy``, the
                   maximum exclusive, ``label`` the class), exactly the per-image box list of
                   :mod:`frugalseg.losses.boxes`.
``"points"``       :class:`Points`: clicks :class:`Point` ``(row, col, label)``; ``label > 0`` is a positive
                   click on an object of that class, ``label == 0`` a negative (background) click.
``"scribbles"``    :class:`Scribbles`: a ``uint8`` label map holding the class of each scribbled pixel and
                   ``IGNORE`` (255) everywhere else.
``"partial"``      :class:`PartialLabels`: a dense label map in which only ``annotated_classes`` were drawn;
                   pixels of the classes NOT annotated in this image appear as background (0), the setting
                   of the marginal and exclusion losses (:mod:`frugalseg.losses.partial_labels`).
=================  ==========================================================================================

**Coordinate order of points: ``(row, col)``** (``row`` down the image, ``col`` across), NOT the ``(x, y)`` of
boxes and of :mod:`frugalseg.foundation.prompts` (where ``x`` is the column). An integer ``(row, col)`` names that
pixel; a fractional one is rounded to the nearest pixel (half up), so the point lies in the image exactly when
``0 <= round(row) < H`` and ``0 <= round(col) < W``.

Conversions to what the losses read: boxes are ``list(boxes.boxes)``; points become a label map plus
``valid_mask`` with :func:`points_to_label_map`; scribbles are their ``label`` with
``valid_mask = label != IGNORE``; partial labels are their ``label`` plus the ``(C,)`` row of the losses'
``annotated`` tensor from :meth:`PartialLabels.annotated_mask`.

Construction checks types and shapes (a wrong type is a programming error, ``ValueError``); whether the
content fits the image and the class list (coordinates inside, labels known, ...) is the job of
:mod:`frugalseg.annotations.checks`, which reports every problem instead of raising on the first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, TypeAlias

import numpy as np

from frugalseg.data.case import IGNORE, Box, Case
from frugalseg.errors import InputError

__all__ = [
    "KINDS",
    "Annotation",
    "Boxes",
    "Kind",
    "PartialLabels",
    "Point",
    "Points",
    "Scribbles",
    "Tags",
    "from_case",
    "point_pixel",
    "points_to_label_map",
]

Kind: TypeAlias = Literal["tags", "boxes", "points", "scribbles", "partial"]
KINDS: tuple[Kind, ...] = ("tags", "boxes", "points", "scribbles", "partial")
"""The annotation kinds, cheapest first."""


def _int(value: object, what: str) -> int:
    """``value`` as an ``int`` (integral floats and numpy integers accepted); ``ValueError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{what} {value!r}: expected an integer")
    if isinstance(value, float | np.floating) and not float(value).is_integer():
        raise ValueError(f"{what} {value!r}: expected an integer")
    return int(value)


def _label_map(label: object, what: str) -> np.ndarray:
    """A read-only ``uint8`` copy of a 2D integer label map with values in ``0..255``."""
    array = np.asarray(label)
    if array.ndim != 2:
        raise ValueError(f"{what}: expected a 2D (H, W) label map, got shape {array.shape}")
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{what}: expected an integer label map, got dtype {array.dtype}")
    if array.size and (int(array.min()) < 0 or int(array.max()) > 255):
        raise ValueError(f"{what}: values {int(array.min())}..{int(array.max())} do not fit 0..255")
    out = np.array(array, dtype=np.uint8, copy=True)
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class Tags:
    """Image-level labels: the foreground classes present in the image (background is never tagged).

    Attributes:
        classes: class indices, kept in the order given (duplicates are kept so that checks can report them).
    """

    kind: ClassVar[Literal["tags"]] = "tags"
    classes: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(_int(c, "tag") for c in self.classes))

    def as_vector(self, num_classes: int) -> np.ndarray:
        """``(num_classes,)`` bool presence vector (entry 0, background, is False).

        Raises:
            ValueError: a tag outside ``[1, num_classes)``.
        """
        vector = np.zeros(num_classes, dtype=bool)
        for c in self.classes:
            if not 1 <= c < num_classes:
                raise ValueError(f"tag {c}: expected a foreground class in [1, {num_classes})")
            vector[c] = True
        return vector


@dataclass(frozen=True)
class Boxes:
    """One box per annotated object, :class:`~frugalseg.data.case.Box` in pixel ``xyxy`` (max exclusive).

    Attributes:
        boxes: the boxes; ``list(boxes)`` is the per-image list the box losses take.
    """

    kind: ClassVar[Literal["boxes"]] = "boxes"
    boxes: tuple[Box, ...]

    def __post_init__(self) -> None:
        boxes = tuple(self.boxes)
        for box in boxes:
            if not isinstance(box, Box):
                raise ValueError(f"boxes: expected frugalseg.data.case.Box items, got {type(box).__name__}")
        object.__setattr__(self, "boxes", boxes)

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass(frozen=True)
class Point:
    """One click at pixel ``(row, col)``: ``label > 0`` on an object of that class, ``label == 0`` background.

    Attributes:
        row: pixel row (down the image); fractional values are rounded to the nearest pixel.
        col: pixel column (across the image).
        label: the class clicked, 0 for a negative (background) click.
    """

    row: float
    col: float
    label: int = 1

    def __post_init__(self) -> None:
        for name in ("row", "col"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
                raise ValueError(f"point {name} {value!r}: expected a number")
            object.__setattr__(self, name, int(value) if isinstance(value, int | np.integer) else float(value))
        object.__setattr__(self, "label", _int(self.label, "point label"))

    @property
    def positive(self) -> bool:
        """Whether the click marks an object (``label > 0``)."""
        return self.label > 0


@dataclass(frozen=True)
class Points:
    """Clicks on one image: positive clicks (``label > 0``) and negative clicks (``label == 0``).

    Attributes:
        points: the clicks, each :class:`Point` ``(row, col, label)``.
    """

    kind: ClassVar[Literal["points"]] = "points"
    points: tuple[Point, ...]

    def __post_init__(self) -> None:
        points = tuple(self.points)
        for point in points:
            if not isinstance(point, Point):
                raise ValueError(f"points: expected Point items, got {type(point).__name__}")
        object.__setattr__(self, "points", points)

    def __len__(self) -> int:
        return len(self.points)


@dataclass(frozen=True, eq=False)
class Scribbles:
    """Scribbles as a label map: the class of each scribbled pixel, ``IGNORE`` (255) where unlabelled.

    The array is copied and made read-only. Compare two with ``np.array_equal(a.label, b.label)``.

    Attributes:
        label: ``(H, W)`` ``uint8``.

    Shape:
        label: ``(H, W)``.
    """

    kind: ClassVar[Literal["scribbles"]] = "scribbles"
    label: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", _label_map(self.label, "scribbles"))

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.label.shape[0]), int(self.label.shape[1]))

    @property
    def valid_mask(self) -> np.ndarray:
        """``(H, W)`` bool, True on scribbled pixels (the losses' ``valid_mask``)."""
        return np.asarray(self.label != IGNORE)

    def classes(self) -> tuple[int, ...]:
        """Sorted classes that have at least one scribbled pixel (background included)."""
        present = np.flatnonzero(np.bincount(self.label.ravel(), minlength=256))
        return tuple(int(c) for c in present if c != IGNORE)


@dataclass(frozen=True, eq=False)
class PartialLabels:
    """A dense label map in which only some classes were annotated (partially supervised segmentation).

    Pixels of a class that was not annotated in this image carry background (0); ``annotated_classes``
    says which foreground classes are real, so the marginal loss can merge the others into background.
    ``IGNORE`` (255) may mark pixels left unlabelled. The array is copied and made read-only.

    Attributes:
        label: ``(H, W)`` ``uint8`` holding 0, the annotated classes and possibly ``IGNORE``.
        annotated_classes: the foreground classes annotated in this image (sorted, unique, each >= 1).

    Shape:
        label: ``(H, W)``.
    """

    kind: ClassVar[Literal["partial"]] = "partial"
    label: np.ndarray
    annotated_classes: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", _label_map(self.label, "partial labels"))
        classes = sorted({_int(c, "annotated class") for c in self.annotated_classes})
        if classes and classes[0] < 1:
            raise ValueError(
                f"annotated_classes {tuple(self.annotated_classes)}: expected foreground classes >= 1 "
                "(background is always annotated)"
            )
        object.__setattr__(self, "annotated_classes", tuple(classes))

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.label.shape[0]), int(self.label.shape[1]))

    @property
    def valid_mask(self) -> np.ndarray:
        """``(H, W)`` bool, True where the pixel is labelled (not ``IGNORE``)."""
        return np.asarray(self.label != IGNORE)

    def annotated_mask(self, num_classes: int) -> np.ndarray:
        """``(num_classes,)`` bool row of the losses' ``annotated`` tensor (background True).

        Raises:
            ValueError: an annotated class ``>= num_classes``.
        """
        mask = np.zeros(num_classes, dtype=bool)
        mask[0] = True
        for c in self.annotated_classes:
            if c >= num_classes:
                raise ValueError(f"annotated class {c}: expected a class below num_classes={num_classes}")
            mask[c] = True
        return mask


Annotation: TypeAlias = Tags | Boxes | Points | Scribbles | PartialLabels
"""Any one annotation of one image."""


def point_pixel(point: Point) -> tuple[int, int]:
    """The pixel ``(row, col)`` a point names: its coordinates rounded to the nearest integer (half up).

    Raises:
        ValueError: a non-finite coordinate.
    """
    if not (math.isfinite(point.row) and math.isfinite(point.col)):
        raise ValueError(f"point ({point.row}, {point.col}) has a non-finite coordinate")
    return math.floor(point.row + 0.5), math.floor(point.col + 0.5)


def points_to_label_map(points: Points | Iterable[Point], shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Points as the point loss reads them: a label map holding each click's class, and where the clicks are.

    Args:
        points: the clicks of one image.
        shape: ``(H, W)`` of the image.

    Returns:
        ``(label, valid)``: ``uint8`` ``(H, W)`` with the class of each clicked pixel (0 for negative clicks)
        and ``IGNORE`` elsewhere, and ``bool`` ``(H, W)`` True exactly at the clicked pixels.

    Raises:
        InputError: a click outside the image or with a non-finite coordinate, a label outside ``0..254``,
            or two clicks on one pixel with different labels.

    Shape:
        ``shape (H, W)`` -> ``label (H, W)``, ``valid (H, W)``.
    """
    height, width = int(shape[0]), int(shape[1])
    label = np.full((height, width), IGNORE, dtype=np.uint8)
    valid = np.zeros((height, width), dtype=bool)
    items = points.points if isinstance(points, Points) else tuple(points)
    for point in items:
        try:
            row, col = point_pixel(point)
        except ValueError as error:
            raise InputError(str(error)) from None
        if not (0 <= row < height and 0 <= col < width):
            raise InputError(f"point (row={point.row}, col={point.col}) lies outside the {height}x{width} image")
        if not 0 <= point.label < IGNORE:
            raise InputError(f"point (row={point.row}, col={point.col}) has label {point.label}; expected 0..254")
        if valid[row, col] and label[row, col] != point.label:
            raise InputError(
                f"points at pixel (row={row}, col={col}) disagree: labels {int(label[row, col])} and {point.label}"
            )
        label[row, col] = point.label
        valid[row, col] = True
    return label, valid


def from_case(case: Case, *, tags: bool = False) -> dict[str, Annotation]:
    """The weak annotations a :class:`~frugalseg.data.case.Case` carries, by kind.

    ``case.boxes`` becomes :class:`Boxes` (when there are any). ``case.tags`` becomes :class:`Tags` only
    when ``tags=True``: some readers fill it with tags of another vocabulary (the folder reader puts a
    diagnosis there), which are not segmentation classes.
    """
    out: dict[str, Annotation] = {}
    if case.boxes:
        out["boxes"] = Boxes(tuple(case.boxes))
    if tags and case.tags is not None:
        out["tags"] = Tags(tuple(case.tags))
    return out
