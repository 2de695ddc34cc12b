"""Turn cases into fixed-size tensors for the network, and network outputs back into original-size maps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from frugalseg.data.case import IGNORE, Case
from frugalseg.errors import InputError

__all__ = ["image_to_tensor", "label_to_tensor", "resize_probabilities", "stack_cases"]


def image_to_tensor(image: np.ndarray, *, size: int, in_channels: int) -> torch.Tensor:
    """Resize an image to ``size x size`` and z-score each channel.

    Shape:
        ``(H, W)`` or ``(H, W, C)`` -> ``(in_channels, size, size)`` float32.
    """
    array = np.asarray(image, dtype=np.float32)
    if not np.isfinite(array).all():
        raise InputError("image contains NaN or infinite values")
    tensor = torch.from_numpy(array[..., None] if array.ndim == 2 else array).permute(2, 0, 1)
    if tensor.shape[0] != in_channels:
        if tensor.shape[0] == 1:
            tensor = tensor.expand(in_channels, -1, -1)
        elif in_channels == 1:
            tensor = tensor.mean(dim=0, keepdim=True)
        else:
            raise InputError(f"image has {tensor.shape[0]} channels, the model expects {in_channels}")
    tensor = F.interpolate(tensor[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    mean = tensor.mean(dim=(1, 2), keepdim=True)
    std = tensor.std(dim=(1, 2), keepdim=True).clamp_min(1e-6)
    return ((tensor - mean) / std).contiguous()


def label_to_tensor(label: np.ndarray, *, size: int, num_classes: int) -> torch.Tensor:
    """Resize a label map by area-averaging its one-hot encoding and taking the argmax.

    Unlabelled pixels (``IGNORE``) compete as one more channel, so they stay unlabelled where they dominate.

    Shape:
        ``(H, W)`` -> ``(size, size)`` int64.
    """
    array = np.asarray(label, dtype=np.int64)
    largest = int(array[array != IGNORE].max(initial=0))
    if largest >= num_classes:
        raise InputError(f"label value {largest} outside 0..{num_classes - 1}")
    target = torch.from_numpy(array)
    ignored = target == IGNORE
    target = torch.where(ignored, torch.full_like(target, num_classes), target)
    one_hot = F.one_hot(target, num_classes + 1).permute(2, 0, 1).float()[None]
    resized = F.interpolate(one_hot, size=(size, size), mode="area")[0].argmax(dim=0)
    return torch.where(resized == num_classes, torch.full_like(resized, IGNORE), resized)


def stack_cases(
    cases: Sequence[Case], *, size: int, in_channels: int, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, in_channels, size, size)`` and labels ``(N, size, size)`` of labelled cases."""
    images = torch.stack([image_to_tensor(case.image, size=size, in_channels=in_channels) for case in cases])
    labels = []
    for case in cases:
        if case.label is None:
            raise InputError(f"case {case.case_id} has no label map")
        labels.append(label_to_tensor(case.label, size=size, num_classes=num_classes))
    return images, torch.stack(labels)


def resize_probabilities(probabilities: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of class probabilities to an image's original ``(H, W)``.

    Shape:
        ``(B, C, size, size)`` -> ``(B, C, H, W)``
    """
    return F.interpolate(probabilities, size=shape, mode="bilinear", align_corners=False)
