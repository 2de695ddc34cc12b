"""Partial cross-entropy: cross-entropy over the labelled pixels only (scribbles, points, partial maps)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from frugalseg.losses._checks import (
    Reduction,
    check_logits,
    check_reduction,
    check_target,
    labelled_mask,
    reduce,
)

__all__ = ["PartialCrossEntropy", "partial_cross_entropy"]


def partial_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    valid_mask: torch.Tensor | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Cross-entropy over labelled pixels; ``target == IGNORE`` or ``valid_mask`` False pixels are excluded.

    With every pixel labelled this is exactly ``F.cross_entropy(logits, target, reduction=reduction)``.
    ``"mean"`` averages over the labelled pixels of the whole batch (a batch without any gives 0 with a
    zero gradient); ``"none"`` returns the per-pixel map with zeros at excluded pixels.

    Args:
        logits: raw class scores.
        target: class indices, ``IGNORE`` (255) where unlabelled.
        valid_mask: True where the label counts; ``None`` means everywhere not ``IGNORE``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Shape:
        ``logits (B, C, H, W)``, ``target (B, H, W)`` int64, ``valid_mask (B, H, W)`` bool
        -> scalar, or ``(B, H, W)`` for ``"none"``.
    """
    check_logits(logits, min_classes=1)
    check_reduction(reduction)
    if isinstance(target, torch.Tensor):
        target = target.to(logits.device)
    check_target(target, logits)
    labelled = labelled_mask(target, valid_mask)
    check_target(target, logits, valid=labelled)
    safe_target = torch.where(labelled, target.long(), torch.zeros_like(target, dtype=torch.long))
    per_pixel = F.cross_entropy(logits, safe_target, reduction="none") * labelled.to(logits.dtype)
    return reduce(per_pixel, reduction, count=labelled.sum())


class PartialCrossEntropy(nn.Module):
    """Module form of :func:`partial_cross_entropy`; stores ``reduction`` only."""

    def __init__(self, *, reduction: Reduction = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        self.reduction: Reduction = reduction

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return partial_cross_entropy(logits, target, valid_mask=valid_mask, reduction=self.reduction)
