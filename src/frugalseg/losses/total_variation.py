"""Total variation of the predicted probability maps: a cheap boundary-length regulariser."""

from __future__ import annotations

import torch
from torch import nn

from frugalseg.losses._checks import Reduction, check_logits, check_pixel_mask, check_reduction, reduce

__all__ = ["TotalVariationLoss", "total_variation_loss"]


def total_variation_loss(
    logits: torch.Tensor,
    *,
    valid_mask: torch.Tensor | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Anisotropic L1 total variation of ``softmax(logits)``, per image.

    Sums ``|p[c, y+1, x] - p[c, y, x]| + |p[c, y, x+1] - p[c, y, x]|`` over classes and over neighbour pairs
    whose two pixels are both valid, divided by the number of valid pixels. 0 for a constant prediction;
    for a hard prediction it is twice the boundary length (in pixel edges) per valid pixel.

    Args:
        logits: raw class scores.
        valid_mask: pixels taking part; ``None`` means all.
        reduction: over images: ``"mean"``, ``"sum"``, or ``"none"`` for per-image losses.

    Shape:
        ``logits (B, C, H, W)``, ``valid_mask (B, H, W)`` bool -> scalar, or ``(B,)``.
    """
    batch, _, height, width = check_logits(logits, min_classes=1)
    check_reduction(reduction)
    valid = check_pixel_mask(valid_mask, (batch, height, width), device=logits.device)
    probs = torch.softmax(logits, dim=1)
    gate = valid.to(logits.dtype)
    rows = (probs[:, :, 1:, :] - probs[:, :, :-1, :]).abs().sum(dim=1) * gate[:, 1:, :] * gate[:, :-1, :]
    cols = (probs[:, :, :, 1:] - probs[:, :, :, :-1]).abs().sum(dim=1) * gate[:, :, 1:] * gate[:, :, :-1]
    per_image = (rows.sum(dim=(1, 2)) + cols.sum(dim=(1, 2))) / gate.sum(dim=(1, 2)).clamp_min(1.0)
    return reduce(per_image, reduction)


class TotalVariationLoss(nn.Module):
    """Module form of :func:`total_variation_loss`; stores ``reduction`` only."""

    def __init__(self, *, reduction: Reduction = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        self.reduction: Reduction = reduction

    def forward(self, logits: torch.Tensor, valid_mask: torch.Tensor | None = None) -> torch.Tensor:
        return total_variation_loss(logits, valid_mask=valid_mask, reduction=self.reduction)
