"""Soft Dice and Dice + cross-entropy: the fully supervised baseline.

The Dice is computed over the batch (nnU-Net's *batch Dice*): intersections and volumes of each class are
summed over every labelled pixel of every image before the ratio is taken, which keeps the loss defined for
images where a class is absent.
"""

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
from frugalseg.losses.partial_ce import partial_cross_entropy

__all__ = ["DiceCELoss", "DiceLoss", "dice_ce_loss", "dice_loss"]


def dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    valid_mask: torch.Tensor | None = None,
    include_background: bool = False,
    smooth: float = 1e-5,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Soft Dice loss ``1 - (2 I_c + smooth) / (P_c + G_c + smooth)`` per class, over the batch.

    ``I_c``, ``P_c`` and ``G_c`` are the sums over all labelled pixels of the batch of ``p_c * g_c``, ``p_c``
    and ``g_c``, with ``p = softmax(logits)`` and ``g`` the one-hot target. Pixels with ``target == IGNORE``
    or ``valid_mask`` False are left out. A class absent from both target and prediction scores 0 loss.

    Args:
        logits: raw class scores.
        target: class indices, ``IGNORE`` (255) where unlabelled.
        valid_mask: True where the label counts; ``None`` means everywhere not ``IGNORE``.
        include_background: also score class 0.
        smooth: additive smoothing of numerator and denominator, ``> 0``.
        reduction: over classes: ``"mean"``, ``"sum"``, or ``"none"`` for the per-class losses.

    Shape:
        ``logits (B, C, H, W)``, ``target (B, H, W)`` int64, ``valid_mask (B, H, W)`` bool
        -> scalar, or ``(C,)`` (``(C - 1,)`` without background) for ``"none"``.
    """
    _, num_classes, _, _ = check_logits(logits, min_classes=2)
    check_reduction(reduction)
    if not smooth > 0:
        raise ValueError(f"smooth={smooth}: expected a positive number")
    if isinstance(target, torch.Tensor):
        target = target.to(logits.device)
    check_target(target, logits)
    labelled = labelled_mask(target, valid_mask)
    check_target(target, logits, valid=labelled)
    weight = labelled.to(logits.dtype).unsqueeze(1)
    safe_target = torch.where(labelled, target.long(), torch.zeros_like(target, dtype=torch.long))
    one_hot = F.one_hot(safe_target, num_classes).permute(0, 3, 1, 2).to(logits.dtype) * weight
    probs = torch.softmax(logits, dim=1) * weight
    dims = (0, 2, 3)
    intersection = (probs * one_hot).sum(dims)
    volumes = probs.sum(dims) + one_hot.sum(dims)
    per_class = 1.0 - (2.0 * intersection + smooth) / (volumes + smooth)
    if not include_background:
        per_class = per_class[1:]
    return reduce(per_class, reduction)


def dice_ce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    valid_mask: torch.Tensor | None = None,
    include_background: bool = False,
    smooth: float = 1e-5,
    dice_weight: float = 1.0,
    ce_weight: float = 1.0,
) -> torch.Tensor:
    """``ce_weight * CE + dice_weight * Dice``, both over the labelled pixels of the batch.

    CE is :func:`partial_cross_entropy` with ``"mean"`` reduction (plain cross-entropy when every pixel is
    labelled); Dice is :func:`dice_loss` with ``"mean"`` over classes.

    Shape:
        ``logits (B, C, H, W)``, ``target (B, H, W)`` int64, ``valid_mask (B, H, W)`` bool -> scalar.
    """
    ce = partial_cross_entropy(logits, target, valid_mask=valid_mask, reduction="mean")
    dice = dice_loss(logits, target, valid_mask=valid_mask, include_background=include_background, smooth=smooth)
    return ce_weight * ce + dice_weight * dice


class DiceLoss(nn.Module):
    """Module form of :func:`dice_loss`; stores its options only."""

    def __init__(
        self, *, include_background: bool = False, smooth: float = 1e-5, reduction: Reduction = "mean"
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        self.include_background = include_background
        self.smooth = smooth
        self.reduction: Reduction = reduction

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return dice_loss(
            logits,
            target,
            valid_mask=valid_mask,
            include_background=self.include_background,
            smooth=self.smooth,
            reduction=self.reduction,
        )


class DiceCELoss(nn.Module):
    """Module form of :func:`dice_ce_loss`; stores its options only."""

    def __init__(
        self,
        *,
        include_background: bool = False,
        smooth: float = 1e-5,
        dice_weight: float = 1.0,
        ce_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.include_background = include_background
        self.smooth = smooth
        self.dice_weight = dice_weight
        self.ce_weight = ce_weight

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return dice_ce_loss(
            logits,
            target,
            valid_mask=valid_mask,
            include_background=self.include_background,
            smooth=self.smooth,
            dice_weight=self.dice_weight,
            ce_weight=self.ce_weight,
        )
