"""Geometry and intensity mapping between an original image and LiteMedSAM's 256x256 input frame.

The official LiteMedSAM inference does, per 2D image:

1. grey -> 3 identical channels (an alpha channel is dropped);
2. resize so the longest side is 256, keeping the aspect ratio (``new = int(old * 256 / max(H, W) + 0.5)``);
3. min-max scale the resized image to [0, 1] (one min and max over all channels);
4. zero-pad at the bottom and right to 256x256;
5. boxes ``(xmin, ymin, xmax_incl, ymax_incl)`` are multiplied by ``256 / max(H, W)``; frugalseg then
   widens each side by :data:`BOX_MARGIN` model pixels (see there);
6. the 256x256 low-resolution mask logits are cropped to the unpadded ``(h, w)`` region and resized
   bilinearly to ``(H, W)``; the mask is ``logits > 0``.

frugalseg boxes have an exclusive max (see :mod:`frugalseg.foundation.prompts`), so step 5 uses
``xmax - 1`` and ``ymax - 1``, the last covered column and row.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from frugalseg.errors import InputError
from frugalseg.foundation.box_fit import widen_boxes

__all__ = [
    "BOX_MARGIN",
    "boxes_to_model_frame",
    "image_to_model_input",
    "last_pixel",
    "logits_to_original",
    "points_to_model_frame",
    "resized_size",
    "to_rgb_float",
]


BOX_MARGIN = 2.5
"""Model-frame pixels a box prompt is widened by on each side. LiteMedSAM learned from ground-truth boxes whose
sides were pushed out by a random 0-5 pixels at 256 px (MedSAM's 0-20 pixels at 1024 px): a tight box is
smaller than every box it saw and makes it under-segment. The mean of that perturbation, 2.5, matches the
prompts to the training distribution."""


def resized_size(original_size: tuple[int, int], *, image_size: int = 256) -> tuple[int, int]:
    """``(h, w)`` of an ``(H, W)`` image whose longest side is resized to ``image_size``."""
    height, width = original_size
    scale = image_size / max(height, width)
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


def to_rgb_float(image: np.ndarray) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` numeric image -> ``(H, W, 3)`` float32.

    Raises:
        InputError: another shape, a non-numeric dtype, an empty image or non-finite values.
    """
    array = np.asarray(image)
    if array.dtype.kind not in "biuf":
        raise InputError(f"image dtype {array.dtype}: expected a numeric array")
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        array = array[..., :3] if array.shape[2] >= 3 else array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise InputError(f"image shape {np.shape(image)}: expected (H, W) grey or (H, W, 1/3/4) channels-last")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise InputError(f"image shape {np.shape(image)}: the image is empty")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise InputError("image holds NaN or infinite values")
    return array


def image_to_model_input(image: np.ndarray, *, image_size: int = 256) -> tuple[torch.Tensor, tuple[int, int]]:
    """Resize (longest side), min-max normalise and pad an image to the model's input frame.

    Downsizing is antialiased (an area-like filter, as the official ``cv2.INTER_AREA``); upsizing is bilinear.

    Returns:
        The input tensor and the ``(h, w)`` size of the image inside it.

    Shape:
        image: ``(H, W)`` or ``(H, W, C)``; returns ``(1, 3, image_size, image_size)`` float32 in [0, 1].
    """
    rgb = to_rgb_float(image)
    size = resized_size(rgb.shape[:2], image_size=image_size)
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
    if size != tuple(rgb.shape[:2]):
        downsizing = size[0] < rgb.shape[0] or size[1] < rgb.shape[1]
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=downsizing)
    low, high = x.min(), x.max()
    x = (x - low) / torch.clamp(high - low, min=1e-8)
    x = F.pad(x, (0, image_size - size[1], 0, image_size - size[0]))
    return x.contiguous(), size


def boxes_to_model_frame(
    boxes: np.ndarray, original_size: tuple[int, int], *, image_size: int = 256, margin: float = 0.0
) -> torch.Tensor:
    """Map ``(N, 4)`` xyxy boxes (max exclusive, original pixels) to the model frame (max inclusive).

    ``(xmin, ymin, xmax - 1, ymax - 1) * image_size / max(H, W)``, then each side moved out by ``margin``
    model pixels and clipped to the resized image. Returns ``(N, 4)`` float32.
    """
    scale = image_size / max(original_size)
    inclusive = np.asarray(boxes, dtype=np.float64) - np.array([0.0, 0.0, 1.0, 1.0])
    inclusive[:, 2:] = np.maximum(inclusive[:, 2:], inclusive[:, :2])  # a 1-pixel-wide box stays a point
    frame = torch.from_numpy(inclusive * scale)
    return widen_boxes(frame, margin, last_pixel(original_size, image_size=image_size)).float()


def last_pixel(original_size: tuple[int, int], *, image_size: int = 256) -> tuple[float, float]:
    """``(x, y)`` of an ``(H, W)`` image's last pixel in the model frame (where boxes are clipped)."""
    scale = image_size / max(original_size)
    return (original_size[1] - 1.0) * scale, (original_size[0] - 1.0) * scale


def points_to_model_frame(points: np.ndarray, original_size: tuple[int, int], *, image_size: int = 256) -> torch.Tensor:
    """Map ``(N, K, 2)`` xy points (original pixels) to the model frame. Returns ``(N, K, 2)`` float32."""
    return torch.from_numpy(np.asarray(points, dtype=np.float64) * (image_size / max(original_size))).float()


def logits_to_original(
    low_res_logits: torch.Tensor, resized: tuple[int, int], original_size: tuple[int, int], *, image_size: int = 256
) -> torch.Tensor:
    """Crop low-resolution mask logits to the unpadded image and resize them bilinearly to the original size.

    The logits cover the whole ``image_size`` input frame at any square resolution ``S`` (256 for
    LiteMedSAM's decoder, or e.g. 64); the crop is ``resized * S / image_size``.

    Shape:
        low_res_logits: ``(N, S, S)`` or ``(N, 1, S, S)``; returns ``(N, H, W)`` float32.
    """
    logits = low_res_logits if low_res_logits.ndim == 4 else low_res_logits[:, None]
    frame = logits.shape[-1]
    crop_h = max(1, round(resized[0] * frame / image_size))
    crop_w = max(1, round(resized[1] * frame / image_size))
    logits = logits[..., :crop_h, :crop_w].float()
    return F.interpolate(logits, size=tuple(original_size), mode="bilinear", align_corners=False)[:, 0]
