"""Joint loss of the SQA network: segmentation loss plus class-balanced BCE on the predicted error map."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from frugalseg.losses import dice_ce_loss
from frugalseg.models.sqa import SQAOutput
from frugalseg.quality.error_targets import class_balanced_bce, error_target

__all__ = ["SQALoss", "SQALossTerms", "sqa_loss"]


class SQALossTerms(NamedTuple):
    """The terms of :func:`sqa_loss`: call ``.total.backward()``; log the others.

    ``error_fraction`` is the fraction of labelled pixels the segmentation got wrong (the error target's
    prevalence, detached), which :meth:`~frugalseg.models.sqa.SQANet.record_error_prevalence` keeps.
    """

    total: torch.Tensor
    segmentation: torch.Tensor
    error: torch.Tensor
    error_fraction: torch.Tensor


def sqa_loss(
    output: SQAOutput,
    target: torch.Tensor,
    *,
    num_classes: int,
    seg_loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    error_weight: float = 1.0,
) -> SQALossTerms:
    """Joint loss: segmentation loss plus ``error_weight`` x class-balanced BCE on the error map.

    The error target, ``argmax(logits.detach()) != target`` over labelled pixels, is recomputed at every call
    from the current segmentation (:func:`frugalseg.quality.error_targets.error_target`).

    Args:
        output: the network's :class:`SQAOutput`.
        target: label map, ``IGNORE`` (255) where unlabelled.
        num_classes: segmentation classes.
        seg_loss_fn: ``(logits, target) -> scalar``; default :func:`frugalseg.losses.dice_ce_loss`.
        error_weight: weight of the error term.

    Shape:
        ``output.logits: (B, C, H, W)``, ``output.error_logits: (B, 1, H, W)``, ``target: (B, H, W)``.
    """
    if error_weight < 0:
        raise ValueError(f"error_weight must be >= 0, got {error_weight}")
    logits, error_logits = output
    if logits.ndim != 4 or logits.shape[1] != num_classes:
        raise ValueError(f"expected logits of shape (B, {num_classes}, H, W), got {tuple(logits.shape)}")
    segmentation = (seg_loss_fn or dice_ce_loss)(logits, target)
    errors, valid_mask = error_target(logits, target)
    error = class_balanced_bce(error_logits, errors, valid_mask=valid_mask)
    fraction = errors.sum() / valid_mask.sum().clamp_min(1)  # errors are 0 at unlabelled pixels
    return SQALossTerms(segmentation + error_weight * error, segmentation, error, fraction)


class SQALoss(nn.Module):
    """Module form of :func:`sqa_loss` (stores the options)."""

    def __init__(
        self,
        *,
        num_classes: int,
        seg_loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        error_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.seg_loss_fn = seg_loss_fn
        self.error_weight = error_weight

    def forward(self, output: SQAOutput, target: torch.Tensor) -> SQALossTerms:
        return sqa_loss(
            output,
            target,
            num_classes=self.num_classes,
            seg_loss_fn=self.seg_loss_fn,
            error_weight=self.error_weight,
        )
