"""What decoder fine-tuning learns from: the objects of a label map, their masks in the model frame, the loss."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from frugalseg.data.case import IGNORE
from frugalseg.foundation.prompting import IVUS_LUMEN

__all__ = ["dice_bce_loss", "mask_to_model_frame", "object_targets"]

_EIGHT = np.ones((3, 3), dtype=bool)


def object_targets(label: np.ndarray, *, ivus: bool = False, min_pixels: int = 16) -> list[tuple[int, np.ndarray]]:
    """The objects of a label map: ``(class, mask)`` for each 8-connected component of each class.

    With ``ivus`` the objects are the lumen components (class ``IVUS_LUMEN``) and the vessel components
    (lumen or wall, reported as the wall class 2), the two structures the IVUS prompts segment.
    ``IGNORE`` pixels belong to no object. Components below ``min_pixels`` are left out.

    Shape:
        label: ``(H, W)``; each mask ``(H, W)`` bool.
    """
    label = np.asarray(label)
    layers: list[tuple[int, np.ndarray]]
    if ivus:
        layers = [(IVUS_LUMEN, label == IVUS_LUMEN), (2, (label != 0) & (label != IGNORE))]
    else:
        classes = [int(c) for c in np.unique(label) if c not in (0, IGNORE)]
        layers = [(c, label == c) for c in classes]
    objects = []
    for c, mask in layers:
        components, count = ndimage.label(mask, structure=_EIGHT)
        for index in range(1, count + 1):
            part = components == index
            if int(part.sum()) >= min_pixels:
                objects.append((c, part))
    return objects


def mask_to_model_frame(mask: np.ndarray, resized: tuple[int, int]) -> torch.Tensor:
    """An object mask at the size ``(h, w)`` the image has inside the model frame (area average >= 0.5).

    Shape:
        mask: ``(H, W)`` bool; returns ``(h, w)`` float32 in {0, 1}.
    """
    tensor = torch.from_numpy(np.asarray(mask, dtype=np.float32))[None, None]
    downsizing = resized[0] < tensor.shape[2] or resized[1] < tensor.shape[3]
    resized_mask = F.interpolate(tensor, size=resized, mode="bilinear", align_corners=False, antialias=downsizing)
    return (resized_mask[0, 0] >= 0.5).float()


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """Soft Dice loss plus binary cross-entropy, per object, on mask logits.

    ``dice = 1 - (2 * sum(p * t) + 1) / (sum(p) + sum(t) + 1)`` with ``p = sigmoid(logits)``; the BCE is the mean
    over pixels. Both are zero-ish for a confident perfect prediction.

    Shape:
        logits, target: ``(N, h, w)``; returns a scalar (``reduction="mean"``/``"sum"``) or ``(N,)`` (``"none"``).
    """
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ in shape")
    target = target.to(logits.dtype)
    probabilities = torch.sigmoid(logits).flatten(1)
    flat = target.flatten(1)
    dice = 1 - (2 * (probabilities * flat).sum(1) + 1) / (probabilities.sum(1) + flat.sum(1) + 1)
    bce = F.binary_cross_entropy_with_logits(logits.flatten(1), flat, reduction="none").mean(1)
    loss = dice + bce
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    raise ValueError(f"reduction={reduction!r}: expected 'mean', 'sum' or 'none'")
