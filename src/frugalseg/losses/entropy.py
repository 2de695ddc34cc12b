"""Entropy minimisation of the softmax: pushes unlabelled pixels towards confident predictions."""

from __future__ import annotations

import math

import torch
from torch import nn

from frugalseg.losses._checks import Reduction, check_logits, check_pixel_mask, check_reduction, reduce

__all__ = ["EntropyLoss", "entropy_loss"]


def entropy_loss(
    logits: torch.Tensor,
    *,
    valid_mask: torch.Tensor | None = None,
    normalize: bool = False,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Shannon entropy ``-sum_c p_c log p_c`` of ``p = softmax(logits)`` at each valid pixel (nats).

    0 for a certain prediction, ``log C`` for a uniform one (1 with ``normalize=True``, which divides by
    ``log C``). ``"mean"`` averages over the valid pixels of the batch; ``"none"`` returns the per-pixel map
    with zeros at invalid pixels.

    Args:
        logits: raw class scores.
        valid_mask: pixels taking part; ``None`` means all.
        normalize: divide by ``log C`` so the value lies in ``[0, 1]``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Shape:
        ``logits (B, C, H, W)``, ``valid_mask (B, H, W)`` bool -> scalar, or ``(B, H, W)`` for ``"none"``.
    """
    batch, num_classes, height, width = check_logits(logits, min_classes=2)
    check_reduction(reduction)
    valid = check_pixel_mask(valid_mask, (batch, height, width), device=logits.device)
    log_probs = torch.log_softmax(logits, dim=1)
    per_pixel = -(log_probs.exp() * log_probs).sum(dim=1)
    if normalize:
        per_pixel = per_pixel / math.log(num_classes)
    per_pixel = per_pixel * valid.to(logits.dtype)
    return reduce(per_pixel, reduction, count=valid.sum())


class EntropyLoss(nn.Module):
    """Module form of :func:`entropy_loss`; stores its options only."""

    def __init__(self, *, normalize: bool = False, reduction: Reduction = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        self.normalize = normalize
        self.reduction: Reduction = reduction

    def forward(self, logits: torch.Tensor, valid_mask: torch.Tensor | None = None) -> torch.Tensor:
        return entropy_loss(logits, valid_mask=valid_mask, normalize=self.normalize, reduction=self.reduction)
