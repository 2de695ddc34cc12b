"""Box annotations as the box losses read them.

**The one box representation of :mod:`frugalseg.losses`:** ``boxes`` is a sequence with one entry per image
of the batch, each a sequence of box objects with the attributes ``xmin, ymin, xmax, ymax, label`` — exactly
:class:`frugalseg.data.case.Box` (any object with those attributes is accepted). Coordinates are pixels,
``x`` along columns and ``y`` along rows, ``xmax``/``ymax`` exclusive. Fractional coordinates are widened
to whole pixels (``floor`` of the minimum, ``ceil`` of the maximum) and clipped to the image. ``label`` is
the foreground class index in ``[1, num_classes)``.

``box_mask`` turns this list into the dense per-class box mask ``(B, C, H, W)`` when a loss only needs the
union of the boxes of each class; the per-box form is kept because the tightness prior needs each box's rows
and columns separately.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import torch

__all__ = ["BoxLike", "box_mask", "box_pixel_span", "check_boxes", "size_bounds_from_boxes"]


class BoxLike(Protocol):
    """Anything with pixel box coordinates (``xmax``/``ymax`` exclusive) and a class label."""

    @property
    def xmin(self) -> float: ...
    @property
    def ymin(self) -> float: ...
    @property
    def xmax(self) -> float: ...
    @property
    def ymax(self) -> float: ...
    @property
    def label(self) -> int: ...


def box_pixel_span(box: BoxLike, *, height: int, width: int) -> tuple[int, int, int, int]:
    """Whole-pixel extent ``(x0, y0, x1, y1)`` (``x1``/``y1`` exclusive) of ``box``, clipped to the image.

    The result may be empty (``x1 <= x0`` or ``y1 <= y0``) when the box lies outside the image.
    """
    x0 = max(0, math.floor(box.xmin))
    y0 = max(0, math.floor(box.ymin))
    x1 = min(width, math.ceil(box.xmax))
    y1 = min(height, math.ceil(box.ymax))
    return x0, y0, x1, y1


def check_boxes(boxes: Sequence[Sequence[BoxLike]], *, batch_size: int, num_classes: int) -> None:
    """Raise ``ValueError`` unless ``boxes`` has one list per image and every box is well formed."""
    if isinstance(boxes, torch.Tensor) or len(boxes) != batch_size:
        got = f"a tensor of shape {tuple(boxes.shape)}" if isinstance(boxes, torch.Tensor) else f"{len(boxes)}"
        raise ValueError(f"boxes: expected one list of boxes per image ({batch_size}), got {got}")
    for index, image_boxes in enumerate(boxes):
        for box in image_boxes:
            try:
                coords = (float(box.xmin), float(box.ymin), float(box.xmax), float(box.ymax))
                label = box.label
            except (AttributeError, TypeError, ValueError) as error:
                raise ValueError(
                    f"boxes[{index}] item {box!r}: expected an object with xmin, ymin, xmax, ymax, label"
                ) from error
            if not all(math.isfinite(v) for v in coords) or coords[2] <= coords[0] or coords[3] <= coords[1]:
                raise ValueError(f"boxes[{index}] box {coords}: expected finite xmin < xmax and ymin < ymax")
            if isinstance(label, bool) or int(label) != label or not 1 <= int(label) < num_classes:
                raise ValueError(
                    f"boxes[{index}] box label {label!r}: expected a foreground class in [1, {num_classes})"
                )


def box_mask(
    boxes: Sequence[Sequence[BoxLike]],
    *,
    num_classes: int,
    height: int,
    width: int,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Dense per-class box mask: True inside any box of that class (channel 0, background, stays False).

    Shape:
        ``boxes``: ``B`` lists -> ``(B, num_classes, height, width)`` bool.
    """
    check_boxes(boxes, batch_size=len(boxes), num_classes=num_classes)
    mask = torch.zeros((len(boxes), num_classes, height, width), dtype=torch.bool, device=device)
    for index, image_boxes in enumerate(boxes):
        for box in image_boxes:
            x0, y0, x1, y1 = box_pixel_span(box, height=height, width=width)
            mask[index, int(box.label), y0:y1, x0:x1] = True
    return mask


def size_bounds_from_boxes(
    boxes: Sequence[Sequence[BoxLike]],
    *,
    num_classes: int,
    height: int,
    width: int,
    lower_fraction: float = 0.0,
    upper_fraction: float = 1.0,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image, per-class size bounds (in pixels) implied by boxes, for :func:`size_constraint_loss`.

    For each foreground class the bounds are ``lower_fraction`` and ``upper_fraction`` times the area of the
    union of that class's boxes. The boxes of an image are taken as complete, so a foreground class with no
    box gets ``[0, 0]`` (absent). The background bounds are not constrained (``valid_mask`` False there);
    set ``valid_mask`` entries False yourself for images whose boxes are incomplete.

    Returns:
        ``(lower, upper, valid_mask)``, float32, float32 and bool.

    Shape:
        ``boxes``: ``B`` lists -> each ``(B, num_classes)``.
    """
    if not 0.0 <= lower_fraction <= upper_fraction:
        raise ValueError(
            f"lower_fraction={lower_fraction}, upper_fraction={upper_fraction}: expected 0 <= lower <= upper"
        )
    areas = box_mask(boxes, num_classes=num_classes, height=height, width=width, device=device)
    areas_f = areas.sum(dim=(2, 3)).to(torch.float32)
    valid = torch.ones((len(boxes), num_classes), dtype=torch.bool, device=areas.device)
    valid[:, 0] = False
    return areas_f * lower_fraction, areas_f * upper_fraction, valid
