"""Typed values exchanged with a promptable segmenter: prompts in, embedding between, masks out.

Coordinate order (the one used everywhere in frugalseg): **x is the column, y is the row**, both in pixels of
the ORIGINAL image (before any resizing done by a backend).

* A box is ``(xmin, ymin, xmax, ymax)`` with ``xmax``/``ymax`` **exclusive**: the box covering columns
  ``2..5`` and rows ``10..19`` is ``(2, 10, 6, 20)``, the same convention as :class:`frugalseg.data.case.Box`.
* A point is ``(x, y)``: the pixel at column ``x``, row ``y``, so a valid point has ``0 <= x < W`` and
  ``0 <= y < H``. Its label is ``1`` (object), ``0`` (background) or ``-1`` (padding, ignored).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from frugalseg.errors import InputError

if TYPE_CHECKING:
    from frugalseg.data.case import Box

__all__ = ["Embedding", "MaskPrediction", "Prompts"]


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=np.float64 if array.dtype.kind == "f" else array.dtype, copy=True)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class Prompts:
    """Prompts for ``N`` objects in one image: one box and/or ``K`` points per object.

    Build with :meth:`from_boxes` / :meth:`from_points` or directly; arrays are copied and made read-only.
    Shape, finiteness and degenerate boxes are checked here; whether the prompts lie inside a given image is
    checked by :meth:`check_inside` (the segmenter calls it with the image size).

    Attributes:
        boxes: ``(N, 4)`` float ``(xmin, ymin, xmax, ymax)``, max exclusive, or ``None``.
        points: ``(N, K, 2)`` float ``(x, y)`` or ``None``.
        point_labels: ``(N, K)`` int, 1 object / 0 background / -1 padding; required with ``points``.
        tight_boxes: the boxes touch their objects, as annotated boxes do, so a segmenter may widen the sides its
            mask does not reach (:mod:`frugalseg.foundation.box_fit`); ``False`` for boxes grown or derived from
            a coarse map.

    Raises:
        InputError: no prompt at all, wrong shapes, non-finite values, an empty or inverted box, an unknown
            point label, or an object whose points are all padding (and that has no box).
    """

    boxes: np.ndarray | None = None
    points: np.ndarray | None = None
    point_labels: np.ndarray | None = None
    tight_boxes: bool = True

    def __post_init__(self) -> None:
        boxes, points, labels = self.boxes, self.points, self.point_labels
        if boxes is None and points is None:
            raise InputError("prompts: give boxes or points (both are None)")
        if boxes is not None:
            boxes = np.asarray(boxes, dtype=np.float64)
            if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.shape[0] == 0:
                raise InputError(f"prompts: boxes must have shape (N>=1, 4), got {boxes.shape}")
            if not np.isfinite(boxes).all():
                raise InputError(f"prompts: box with a non-finite coordinate: {boxes[~np.isfinite(boxes).all(1)][0]}")
            bad = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
            if bad.any():
                raise InputError(
                    f"prompts: empty box {tuple(boxes[bad][0].tolist())}: expected xmin < xmax and ymin < ymax"
                )
            object.__setattr__(self, "boxes", _readonly(boxes))
        if points is not None:
            points = np.asarray(points, dtype=np.float64)
            if points.ndim != 3 or points.shape[2] != 2 or points.shape[0] == 0 or points.shape[1] == 0:
                raise InputError(f"prompts: points must have shape (N>=1, K>=1, 2), got {points.shape}")
            if labels is None:
                raise InputError("prompts: points need point_labels of shape (N, K)")
            labels = np.asarray(labels)
            if labels.shape != points.shape[:2]:
                raise InputError(f"prompts: point_labels shape {labels.shape} != points shape {points.shape[:2]}")
            if labels.dtype.kind == "f" and not np.all(labels == np.round(labels)):
                raise InputError("prompts: point_labels must be integers 1, 0 or -1")
            labels = labels.astype(np.int64)
            unknown = ~np.isin(labels, (-1, 0, 1))
            if unknown.any():
                raise InputError(f"prompts: point label {labels[unknown][0]}: expected 1, 0 or -1")
            used = labels != -1
            if not np.isfinite(points[used]).all():
                raise InputError("prompts: point with a non-finite coordinate")
            if boxes is None and not used.any(axis=1).all():
                raise InputError(f"prompts: object {int(np.argmin(used.any(axis=1)))} has only padding points")
            if boxes is not None and boxes.shape[0] != points.shape[0]:
                raise InputError(f"prompts: {boxes.shape[0]} boxes but {points.shape[0]} point sets")
            object.__setattr__(self, "points", _readonly(np.where(used[..., None], points, 0.0)))
            object.__setattr__(self, "point_labels", _readonly(labels))
        elif labels is not None:
            raise InputError("prompts: point_labels given without points")

    @property
    def num_objects(self) -> int:
        """``N``, the number of objects (one mask each)."""
        if self.boxes is not None:
            return int(self.boxes.shape[0])
        return 0 if self.points is None else int(self.points.shape[0])

    def check_inside(self, image_size: tuple[int, int]) -> None:
        """Raise :class:`InputError` when a box or a (non-padding) point leaves an image of ``(H, W)``."""
        height, width = image_size
        if self.boxes is not None:
            limits = np.array([width, height, width, height], dtype=np.float64)
            out = (self.boxes < 0).any(axis=1) | (self.boxes > limits).any(axis=1)
            if out.any():
                raise InputError(
                    f"prompts: box {tuple(self.boxes[out][0].tolist())} leaves the {height}x{width} image "
                    f"(expected 0 <= xmin < xmax <= {width}, 0 <= ymin < ymax <= {height})"
                )
        if self.points is not None and self.point_labels is not None:
            used = self.point_labels != -1
            pts = self.points[used]
            out = (pts < 0).any(axis=1) | (pts[:, 0] >= width) | (pts[:, 1] >= height)
            if out.any():
                raise InputError(
                    f"prompts: point {tuple(pts[out][0].tolist())} leaves the {height}x{width} image "
                    f"(expected 0 <= x < {width}, 0 <= y < {height})"
                )

    @classmethod
    def from_boxes(cls, boxes: Sequence[Box] | Sequence[Sequence[float]] | np.ndarray) -> Prompts:
        """One object per box; accepts :class:`frugalseg.data.case.Box` objects or ``(N, 4)`` xyxy values."""
        rows = [box.as_tuple() if hasattr(box, "as_tuple") else tuple(box) for box in boxes]
        return cls(boxes=np.asarray(rows, dtype=np.float64).reshape(len(rows), -1) if rows else np.zeros((0, 4)))

    @classmethod
    def from_points(
        cls,
        points: np.ndarray | Sequence[Sequence[Sequence[float]]],
        point_labels: np.ndarray | Sequence[Sequence[int]],
    ) -> Prompts:
        """``K`` points per object: ``points`` ``(N, K, 2)`` xy, ``point_labels`` ``(N, K)``."""
        return cls(points=np.asarray(points, dtype=np.float64), point_labels=np.asarray(point_labels))


@dataclass(frozen=True, eq=False)
class Embedding:
    """The image encoder's output for one image, plus what is needed to map masks back to it.

    A value: it holds no reference to the model, and can be cached on disk and reused with any prompts.

    Attributes:
        features: image embedding on the model's grid.
        original_size: ``(H, W)`` of the image that was encoded.
        resized_size: ``(h, w)`` of that image inside the model's padded input frame.
        model_id: the backend that produced it (``predict`` refuses embeddings of another model).

    Shape:
        features: ``(1, C, h_e, w_e)`` float32, ``(1, 256, 64, 64)`` for LiteMedSAM.
    """

    features: torch.Tensor
    original_size: tuple[int, int]
    resized_size: tuple[int, int]
    model_id: str

    def __post_init__(self) -> None:
        if self.features.ndim != 4 or self.features.shape[0] != 1:
            raise ValueError(f"Embedding.features must have shape (1, C, h, w), got {tuple(self.features.shape)}")
        object.__setattr__(self, "original_size", (int(self.original_size[0]), int(self.original_size[1])))
        object.__setattr__(self, "resized_size", (int(self.resized_size[0]), int(self.resized_size[1])))
        if min(self.original_size) < 1 or min(self.resized_size) < 1:
            raise ValueError(f"Embedding sizes must be positive, got {self.original_size} / {self.resized_size}")


@dataclass(frozen=True, eq=False)
class MaskPrediction:
    """One mask per prompted object, at the original image size.

    Attributes:
        masks: ``logits > 0``.
        scores: the model's predicted IoU of each mask with the object.
        logits: mask logits resized to the original image.

    Shape:
        masks: ``(N, H, W)`` bool.
        scores: ``(N,)`` float32.
        logits: ``(N, H, W)`` float32.
    """

    masks: torch.Tensor
    scores: torch.Tensor
    logits: torch.Tensor

    def __post_init__(self) -> None:
        if self.masks.ndim != 3 or self.masks.shape != self.logits.shape or self.scores.shape != self.masks.shape[:1]:
            raise ValueError(
                f"MaskPrediction shapes disagree: masks {tuple(self.masks.shape)}, "
                f"logits {tuple(self.logits.shape)}, scores {tuple(self.scores.shape)}"
            )
