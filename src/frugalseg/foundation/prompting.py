"""Prompts for a promptable segmenter from weak annotations, one documented conversion per annotation kind.

Coordinate orders: :mod:`frugalseg.annotations` clicks are ``(row, col)``; :class:`~frugalseg.foundation.Prompts`
points are ``(x, y)`` with ``x`` the column (:func:`rowcol_to_xy`). Boxes are pixel ``xyxy`` with the maximum
exclusive in both (:class:`~frugalseg.data.case.Box` and ``Prompts.boxes``), so they pass unchanged.

Every conversion returns :class:`ObjectPrompts`: the :class:`Prompts` of ``N`` objects plus the class of each
(several objects per image, possibly several per class). A prompt is one object per **class** for clicks and
scribbles (they do not say which object a pixel belongs to) and one per **box** for boxes.

=================  =============================================================================================
annotation         prompts (:func:`prompts_from_annotation` dispatches)
=================  =============================================================================================
``Boxes``          :func:`prompts_from_boxes`: each box as it is (clipped to the image).
``Points``         :func:`prompts_from_points`: per class, the box around its positive clicks grown by
                   ``padding`` plus the clicks themselves (``mode="box"``), or the clicks only
                   (``mode="points"``, the model was trained on boxes; measure both).
``Scribbles``      :func:`prompts_from_scribbles`: per class, the box of its scribbled pixels grown by
                   ``padding`` plus ``points_per_object`` positive points sampled on the scribble (seeded) and
                   ``negatives`` points sampled on the background scribble.
IVUS boxes         :func:`ivus_prompts`: a lumen box and a vessel box (the box of the wall class encloses the
                   whole vessel); the label map is ``lumen`` and ``wall = vessel minus lumen``
                   (:func:`ivus_label_map`).
=================  =============================================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from frugalseg.annotations.kinds import Annotation, Boxes, Point, Points, Scribbles, point_pixel
from frugalseg.data.case import IGNORE, Box
from frugalseg.errors import InputError
from frugalseg.foundation.prompts import Prompts

__all__ = [
    "IVUS_LUMEN",
    "IVUS_WALL",
    "ObjectPrompts",
    "grow_box",
    "ivus_label_map",
    "ivus_prompts",
    "jitter_boxes",
    "jitter_prompts",
    "points_box",
    "prompts_from_annotation",
    "prompts_from_boxes",
    "prompts_from_points",
    "prompts_from_scribbles",
    "rowcol_to_xy",
]

IVUS_LUMEN = 1
"""Class index of the lumen in IVUS label maps (classes background, lumen, vessel_wall)."""
IVUS_WALL = 2
"""Class index of the vessel wall; its prompt is the whole vessel (external elastic membrane)."""


@dataclass(frozen=True, eq=False)
class ObjectPrompts:
    """Prompts for the ``N`` objects of one image and the class of each.

    Attributes:
        prompts: one box and/or points per object, ``(x, y)`` order.
        classes: class index of each object (``len == prompts.num_objects``).
    """

    prompts: Prompts
    classes: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(int(c) for c in self.classes))
        if len(self.classes) != self.prompts.num_objects:
            raise ValueError(f"{len(self.classes)} classes for {self.prompts.num_objects} prompted objects")

    @property
    def num_objects(self) -> int:
        return len(self.classes)


def rowcol_to_xy(points: Sequence[Point] | np.ndarray) -> np.ndarray:
    """Clicks in ``(row, col)`` order to prompt points in ``(x, y) = (col, row)`` order.

    :class:`~frugalseg.annotations.Point` objects are first rounded to the pixel they name
    (:func:`~frugalseg.annotations.point_pixel`, half up); an array ``(..., 2)`` of ``(row, col)`` is only
    swapped.

    Returns:
        float64 ``(..., 2)`` of ``(x, y)``: the pixel at row ``r``, column ``c`` becomes ``(c, r)``.

    Raises:
        InputError: a click with a non-finite coordinate.
    """
    if isinstance(points, np.ndarray):
        array = np.asarray(points, dtype=np.float64)
        if array.shape[-1:] != (2,):
            raise ValueError(f"rowcol_to_xy: expected (..., 2) (row, col) values, got shape {array.shape}")
        return array[..., ::-1].copy()
    pixels = []
    for point in points:
        try:
            pixels.append(point_pixel(point))
        except ValueError as error:
            raise InputError(str(error)) from None
    return np.asarray(pixels, dtype=np.float64).reshape(-1, 2)[:, ::-1].copy()


def _clip_box(box: Sequence[float], image_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """Clip an ``xyxy`` box (max exclusive) to an ``(H, W)`` image, keeping at least one pixel."""
    height, width = image_size
    x0 = float(np.clip(box[0], 0, width - 1))
    y0 = float(np.clip(box[1], 0, height - 1))
    x1 = float(np.clip(box[2], x0 + 1, width))
    y1 = float(np.clip(box[3], y0 + 1, height))
    return x0, y0, x1, y1


def grow_box(
    box: Sequence[float], image_size: tuple[int, int], *, padding: float, min_padding: float = 0.0
) -> tuple[float, float, float, float]:
    """Grow an ``xyxy`` box (max exclusive) on each side and clip it to the image.

    Each side moves out by ``max(min_padding, padding * side)``, ``side`` the box's width (left/right) or
    height (top/bottom), then the box is clipped to ``(H, W)`` (``0 <= x < W``, ``xmax <= W``).
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    dx, dy = max(min_padding, padding * (x1 - x0)), max(min_padding, padding * (y1 - y0))
    return _clip_box((x0 - dx, y0 - dy, x1 + dx, y1 + dy), image_size)


def jitter_boxes(
    boxes: np.ndarray, image_size: tuple[int, int], *, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Move each side of ``(N, 4)`` xyxy boxes (max exclusive) by ``uniform(-fraction, fraction)`` of the box size.

    Left and right move by a fraction of the width, top and bottom of the height (as a hurried annotator, and
    as :func:`~frugalseg.annotations.simulate_boxes`, without its rounding); the result is clipped to the
    ``(H, W)`` image and keeps at least one pixel. Returns float64 ``(N, 4)``.
    """
    height, width = image_size
    boxes = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    size = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)  # (w, h, w, h)
    boxes = boxes + rng.uniform(-fraction, fraction, size=boxes.shape) * size
    boxes[:, 0] = np.clip(boxes[:, 0], 0, width - 1)
    boxes[:, 1] = np.clip(boxes[:, 1], 0, height - 1)
    boxes[:, 2] = np.clip(boxes[:, 2], boxes[:, 0] + 1, width)
    boxes[:, 3] = np.clip(boxes[:, 3], boxes[:, 1] + 1, height)
    return boxes


def jitter_prompts(
    prompts: Prompts,
    image_size: tuple[int, int],
    *,
    fraction: float,
    rng: np.random.Generator,
    masks_area: np.ndarray | None = None,
) -> Prompts:
    """A jittered copy of ``prompts`` (same objects, same order).

    Boxes go through :func:`jitter_boxes`. Objects without a box move their points by ``uniform(-r, r)``
    pixels in x and y, ``r = fraction * sqrt(masks_area)`` (0 when no area is given), clipped to the image;
    points of objects with a box are unchanged.

    Shape:
        masks_area: ``(N,)`` pixel counts of the objects' masks.
    """
    height, width = image_size
    boxes = points = None
    if prompts.boxes is not None:
        boxes = jitter_boxes(prompts.boxes, image_size, fraction=fraction, rng=rng)
    if prompts.points is not None:
        points = np.array(prompts.points)
        if prompts.boxes is None:
            area = np.zeros(points.shape[0]) if masks_area is None else np.asarray(masks_area, dtype=np.float64)
            radius = fraction * np.sqrt(area)[:, None, None]
            points = points + rng.uniform(-1.0, 1.0, size=points.shape) * radius
            points[..., 0] = np.clip(points[..., 0], 0, width - 1)
            points[..., 1] = np.clip(points[..., 1], 0, height - 1)
    return Prompts(boxes=boxes, points=points, point_labels=prompts.point_labels, tight_boxes=prompts.tight_boxes)


def points_box(xy: np.ndarray) -> tuple[float, float, float, float]:
    """The tight ``xyxy`` box (max exclusive) of pixels given as ``(K, 2)`` integer ``(x, y)``."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if xy.shape[0] == 0:
        raise ValueError("points_box: no points")
    return float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max() + 1), float(xy[:, 1].max() + 1)


def _pad_point_sets(sets: list[np.ndarray], labels: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack ragged ``(K_i, 2)`` point sets into ``(N, K, 2)`` with label -1 as padding."""
    k = max(1, max(len(s) for s in sets))
    points = np.zeros((len(sets), k, 2))
    point_labels = np.full((len(sets), k), -1, dtype=np.int64)
    for index, (xy, lab) in enumerate(zip(sets, labels, strict=True)):
        points[index, : len(xy)] = xy
        point_labels[index, : len(lab)] = lab
    return points, point_labels


def prompts_from_boxes(
    boxes: Boxes | Sequence[Box], image_size: tuple[int, int], *, tight: bool = True
) -> ObjectPrompts:
    """One object per box, its class the box's ``label``; boxes are clipped to the ``(H, W)`` image. ``tight``:
    the boxes touch their objects (:attr:`Prompts.tight_boxes`).

    Raises:
        InputError: no boxes.
    """
    items = boxes.boxes if isinstance(boxes, Boxes) else tuple(boxes)
    if not items:
        raise InputError("boxes: the image has no box to prompt with")
    xyxy = np.array([_clip_box(box.as_tuple(), image_size) for box in items])
    return ObjectPrompts(Prompts(boxes=xyxy, tight_boxes=tight), tuple(box.label for box in items))


def prompts_from_points(
    points: Points | Sequence[Point],
    image_size: tuple[int, int],
    *,
    mode: str = "box",
    padding: float = 0.1,
    min_padding: float = 8.0,
    other_classes_negative: bool = True,
) -> ObjectPrompts:
    """One object per clicked class: its positive clicks, the negative clicks, and (``mode="box"``) a box.

    The box is the tight box of the class's positive clicks grown by :func:`grow_box` (``padding`` of its size,
    at least ``min_padding`` pixels a side, so that one click gives a ``2 * min_padding + 1`` square).
    Clicks are converted with :func:`rowcol_to_xy`. Each object's points are its positive clicks (label 1),
    then, in their input order, the negative clicks and, with ``other_classes_negative``, the positive clicks
    of the other classes (label 0; turn it off for nested structures such as IVUS lumen inside vessel).

    Args:
        points: the clicks of one image.
        image_size: ``(H, W)``.
        mode: ``"box"`` (box + clicks) or ``"points"`` (clicks only).
        padding, min_padding: growth of the box (``mode="box"``).
        other_classes_negative: use other classes' clicks as background clicks.

    Raises:
        InputError: no positive click, or a click outside the image.
    """
    if mode not in ("box", "points"):
        raise ValueError(f"mode={mode!r}: expected 'box' or 'points'")
    items = points.points if isinstance(points, Points) else tuple(points)
    height, width = image_size
    xy = rowcol_to_xy(items)
    outside = (xy[:, 0] < 0) | (xy[:, 0] >= width) | (xy[:, 1] < 0) | (xy[:, 1] >= height)
    if outside.any():
        raise InputError(f"click (x, y) = {tuple(xy[outside][0])} lies outside the {height}x{width} image")
    labels = np.array([p.label for p in items], dtype=np.int64)
    classes = sorted({int(c) for c in labels if c > 0})
    if not classes:
        raise InputError("points: the image has no positive click to prompt with")
    sets, set_labels, boxes = [], [], []
    for c in classes:
        own = labels == c
        negative = (labels == 0) | ((labels > 0) & ~own) if other_classes_negative else labels == 0
        sets.append(np.concatenate([xy[own], xy[negative]]))
        set_labels.append(np.concatenate([np.ones(int(own.sum()), np.int64), np.zeros(int(negative.sum()), np.int64)]))
        boxes.append(grow_box(points_box(xy[own]), image_size, padding=padding, min_padding=min_padding))
    point_array, label_array = _pad_point_sets(sets, set_labels)
    prompts = Prompts(boxes=np.array(boxes) if mode == "box" else None, points=point_array, point_labels=label_array)
    return ObjectPrompts(prompts, tuple(classes))


def prompts_from_scribbles(
    scribbles: Scribbles,
    *,
    points_per_object: int = 3,
    negatives: int = 2,
    padding: float = 0.1,
    min_padding: float = 2.0,
    seed: int | np.random.Generator = 0,
) -> ObjectPrompts:
    """One object per scribbled foreground class: the box of its scribble plus points sampled on it.

    The box is the tight box of the class's scribbled pixels grown by :func:`grow_box`. ``points_per_object``
    positive points are drawn uniformly without replacement among those pixels and ``negatives`` negative
    points among the background (class 0) scribble, from ``numpy.random.default_rng(seed)`` (the same seed
    gives the same prompts). Scribbles that hold only background give no object.

    Raises:
        InputError: no foreground scribble.
    """
    if points_per_object < 0 or negatives < 0:
        raise ValueError(f"points_per_object={points_per_object}, negatives={negatives}: expected >= 0")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    label = scribbles.label
    classes = [c for c in scribbles.classes() if c not in (0, IGNORE)]
    if not classes:
        raise InputError("scribbles: the image has no foreground scribble to prompt with")
    background_rc = np.argwhere(label == 0)
    sets, set_labels, boxes = [], [], []
    for c in classes:
        rc = np.argwhere(label == c)
        boxes.append(grow_box(points_box(rc[:, ::-1]), scribbles.shape, padding=padding, min_padding=min_padding))
        positive = rc[rng.choice(len(rc), size=min(points_per_object, len(rc)), replace=False)]
        chosen = min(negatives, len(background_rc))
        negative = background_rc[rng.choice(len(background_rc), size=chosen, replace=False)] if chosen else rc[:0]
        sets.append(rowcol_to_xy(np.concatenate([positive, negative])))
        set_labels.append(np.concatenate([np.ones(len(positive), np.int64), np.zeros(len(negative), np.int64)]))
    if max(len(s) for s in sets) == 0:
        return ObjectPrompts(Prompts(boxes=np.array(boxes)), tuple(classes))
    point_array, label_array = _pad_point_sets(sets, set_labels)
    return ObjectPrompts(Prompts(boxes=np.array(boxes), points=point_array, point_labels=label_array), tuple(classes))


def ivus_prompts(
    boxes: Boxes | Sequence[Box], image_size: tuple[int, int], *, lumen: int = IVUS_LUMEN, wall: int = IVUS_WALL
) -> ObjectPrompts:
    """IVUS: the lumen box(es) and the vessel box(es), classes ``lumen`` and ``wall``.

    The box of the wall class encloses the whole vessel (the wall is the ring around the lumen), so it is the
    vessel prompt; the mask the model returns for it is the filled vessel, and :func:`ivus_label_map` turns
    the two masks into ``lumen`` and ``wall = vessel minus lumen``. Boxes of other classes are refused.

    Raises:
        InputError: a box of another class, or no box.
    """
    items = boxes.boxes if isinstance(boxes, Boxes) else tuple(boxes)
    other = [box.label for box in items if box.label not in (lumen, wall)]
    if other:
        raise InputError(f"IVUS box of class {other[0]}: expected lumen ({lumen}) or vessel wall ({wall})")
    return prompts_from_boxes(items, image_size)


def ivus_label_map(
    lumen_mask: np.ndarray, vessel_mask: np.ndarray, *, lumen: int = IVUS_LUMEN, wall: int = IVUS_WALL
) -> np.ndarray:
    """IVUS label map from the lumen and vessel masks: ``lumen`` on the lumen, ``wall`` on vessel minus lumen.

    The lumen wins where the masks disagree (a lumen pixel outside the predicted vessel stays lumen).

    Shape:
        lumen_mask, vessel_mask: ``(H, W)`` bool; returns ``(H, W)`` uint8.
    """
    lumen_mask, vessel_mask = np.asarray(lumen_mask, dtype=bool), np.asarray(vessel_mask, dtype=bool)
    if lumen_mask.shape != vessel_mask.shape:
        raise ValueError(f"lumen mask {lumen_mask.shape} and vessel mask {vessel_mask.shape} differ in shape")
    out = np.zeros(lumen_mask.shape, dtype=np.uint8)
    out[vessel_mask] = wall
    out[lumen_mask] = lumen
    return out


def prompts_from_annotation(
    annotation: Annotation,
    image_size: tuple[int, int],
    *,
    points_mode: str = "box",
    seed: int | np.random.Generator = 0,
) -> ObjectPrompts:
    """Dispatch on the annotation's kind with the default options of each conversion (see the table above).

    Raises:
        InputError: an annotation kind that gives no prompt (tags, partial labels), or an empty annotation.
    """
    if isinstance(annotation, Boxes):
        return prompts_from_boxes(annotation, image_size)
    if isinstance(annotation, Points):
        return prompts_from_points(annotation, image_size, mode=points_mode)
    if isinstance(annotation, Scribbles):
        if annotation.shape != tuple(image_size):
            raise InputError(f"scribbles of shape {annotation.shape} for an image of shape {tuple(image_size)}")
        return prompts_from_scribbles(annotation, seed=seed)
    raise InputError(f"annotation kind {annotation.kind!r} gives no prompt; use boxes, points or scribbles")
