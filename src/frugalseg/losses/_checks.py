"""Shared input checks and reductions for the losses (private to :mod:`frugalseg.losses`).

Every message names the offending argument and its value or shape, and says what was expected.
"""

from __future__ import annotations

from typing import Literal

import torch

from frugalseg.data.case import IGNORE

__all__ = [
    "Reduction",
    "check_image",
    "check_logits",
    "check_pixel_mask",
    "check_reduction",
    "check_target",
    "labelled_mask",
    "reduce",
]

Reduction = Literal["mean", "sum", "none"]
_REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> None:
    """Raise ``ValueError`` unless ``reduction`` is one of ``"mean"``, ``"sum"``, ``"none"``."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction={reduction!r}: expected one of {', '.join(map(repr, _REDUCTIONS))}")


def check_logits(logits: torch.Tensor, *, min_classes: int = 2) -> tuple[int, int, int, int]:
    """Check ``logits`` is a floating ``(B, C, H, W)`` tensor with ``C >= min_classes``; return its shape."""
    if not isinstance(logits, torch.Tensor):
        raise ValueError(f"logits: expected a torch.Tensor, got {type(logits).__name__}")
    if logits.ndim != 4:
        raise ValueError(f"logits shape {tuple(logits.shape)}: expected (B, C, H, W)")
    if not logits.is_floating_point():
        raise ValueError(f"logits dtype {logits.dtype}: expected a floating-point tensor")
    b, c, h, w = (int(s) for s in logits.shape)
    if c < min_classes:
        raise ValueError(f"logits shape {tuple(logits.shape)}: expected at least {min_classes} classes (dim 1)")
    return b, c, h, w


def check_target(target: torch.Tensor, logits: torch.Tensor, *, valid: torch.Tensor | None = None) -> None:
    """Check ``target`` is an integer ``(B, H, W)`` label map matching ``logits``.

    Labels must lie in ``[0, C)`` wherever ``valid`` is True (``IGNORE`` pixels are expected to be invalid).
    """
    if not isinstance(target, torch.Tensor):
        raise ValueError(f"target: expected a torch.Tensor, got {type(target).__name__}")
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != tuple(expected):
        raise ValueError(f"target shape {tuple(target.shape)}: expected (B, H, W) = {tuple(expected)}")
    if target.dtype == torch.bool or target.is_floating_point() or target.is_complex():
        raise ValueError(f"target dtype {target.dtype}: expected an integer label map (torch.int64)")
    if valid is not None and target.numel() > 0:
        labels = target[valid]
        if labels.numel() > 0:
            low, high = int(labels.min()), int(labels.max())
            num_classes = int(logits.shape[1])
            if low < 0 or high >= num_classes:
                bad = low if low < 0 else high
                raise ValueError(
                    f"target contains label {bad}: expected labels in [0, {num_classes}) or {IGNORE} (IGNORE)"
                )


def check_pixel_mask(
    mask: torch.Tensor | None, shape: tuple[int, ...], *, name: str = "valid_mask", device: torch.device
) -> torch.Tensor:
    """Return ``mask`` checked to be a bool tensor of ``shape``, or an all-True mask when it is ``None``."""
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(mask).__name__}")
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{name} shape {tuple(mask.shape)}: expected {tuple(shape)}")
    if mask.dtype != torch.bool:
        raise ValueError(f"{name} dtype {mask.dtype}: expected torch.bool")
    return mask.to(device)


def check_image(image: torch.Tensor, logits: torch.Tensor) -> None:
    """Check ``image`` is a floating ``(B, C_img, H, W)`` tensor with the batch and size of ``logits``."""
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"image: expected a torch.Tensor, got {type(image).__name__}")
    if image.ndim != 4 or image.shape[0] != logits.shape[0] or image.shape[2:] != logits.shape[2:]:
        raise ValueError(
            f"image shape {tuple(image.shape)}: expected (B, C_img, H, W) with B, H, W = "
            f"{(int(logits.shape[0]), *(int(s) for s in logits.shape[2:]))}"
        )
    if not image.is_floating_point():
        raise ValueError(f"image dtype {image.dtype}: expected a floating-point tensor")


def labelled_mask(target: torch.Tensor, valid_mask: torch.Tensor | None) -> torch.Tensor:
    """Pixels that carry a label: ``target != IGNORE`` and ``valid_mask`` (checked) where given."""
    valid = check_pixel_mask(valid_mask, tuple(target.shape), device=target.device)
    return valid & (target != IGNORE)


def reduce(values: torch.Tensor, reduction: str, *, count: torch.Tensor | None = None) -> torch.Tensor:
    """Reduce ``values`` with ``reduction``.

    ``"mean"`` divides the sum by ``count`` when given (the number of contributing elements; a zero count
    gives a zero loss that still carries a gradient), else by ``values.numel()``.
    """
    check_reduction(reduction)
    if reduction == "none":
        return values
    total = values.sum()
    if reduction == "sum":
        return total
    denominator = values.new_tensor(float(values.numel())) if count is None else count.to(values.dtype)
    return total / denominator.clamp_min(1.0)
