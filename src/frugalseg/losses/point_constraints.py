"""Point supervision: cross-entropy at clicked points plus a size prior (after Bearman et al. 2016).

Bearman et al. ("What's the point: semantic segmentation with point supervision", ECCV 2016) train on the
cross-entropy at annotated points plus an objectness prior; here the prior is a size inequality
constraint ``lower <= size_c <= upper`` (e.g. from typical object sizes) with a differentiable penalty
(the quadratic penalty of Kervadec et al. 2019 by default, see :mod:`frugalseg.losses.size_constraint`).

Points are given as a label map: ``target`` holds the class of each clicked pixel and ``valid_mask`` is True
exactly at the clicks. *Positive* points carry a foreground class; *negative* points ("not the object")
carry class 0 (background) and can be weighted with ``negative_weight``.

Per image the loss is the weighted mean of the point cross-entropies (0 without points) plus
``size_weight`` times the summed size penalties of the classes whose bounds are valid. When every pixel is
a point, ``negative_weight == 1`` and no bounds are given, it is the per-image mean cross-entropy (and
``"mean"`` equals ``F.cross_entropy`` over the batch).
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
from frugalseg.losses.size_constraint import Penalty, size_constraint_loss

__all__ = ["PointLoss", "point_loss"]


def point_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    valid_mask: torch.Tensor | None = None,
    negative_weight: float = 1.0,
    size_lower: torch.Tensor | None = None,
    size_upper: torch.Tensor | None = None,
    size_valid_mask: torch.Tensor | None = None,
    size_weight: float = 1.0,
    penalty: Penalty = "quadratic",
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Point cross-entropy plus an optional size-constraint penalty (see the module docstring).

    Args:
        logits: raw class scores; class 0 is background.
        target: class of each point (0 for negative points), anything (e.g. ``IGNORE``) elsewhere.
        valid_mask: True at the points; ``None`` means every pixel whose target is not ``IGNORE``.
        negative_weight: weight of the cross-entropy at negative (class 0) points.
        size_lower: lower size bounds in pixels, or ``None``.
        size_upper: upper size bounds in pixels, or ``None``.
        size_valid_mask: which ``(image, class)`` bounds are known; ``None`` means all.
        size_weight: weight of the size penalty.
        penalty: ``"quadratic"`` (default) or ``"log_barrier"``.
        reduction: over images: ``"mean"``, ``"sum"``, or ``"none"`` for per-image losses.

    Shape:
        ``logits (B, C, H, W)``, ``target (B, H, W)`` int64, ``valid_mask (B, H, W)`` bool,
        ``size_lower``/``size_upper (B, C)``, ``size_valid_mask (B, C)`` bool -> scalar, or ``(B,)``.
    """
    check_logits(logits, min_classes=2)
    check_reduction(reduction)
    if not negative_weight >= 0:
        raise ValueError(f"negative_weight={negative_weight}: expected a number >= 0")
    if isinstance(target, torch.Tensor):
        target = target.to(logits.device)
    check_target(target, logits)
    points = labelled_mask(target, valid_mask)
    check_target(target, logits, valid=points)
    safe_target = torch.where(points, target.long(), torch.zeros_like(target, dtype=torch.long))
    weights = torch.where(safe_target == 0, negative_weight, 1.0).to(logits.dtype) * points.to(logits.dtype)
    per_pixel = F.cross_entropy(logits, safe_target, reduction="none") * weights
    per_image = per_pixel.sum(dim=(1, 2)) / points.sum(dim=(1, 2)).clamp_min(1).to(logits.dtype)
    if size_lower is not None or size_upper is not None:
        size_term = size_constraint_loss(
            logits, size_lower, size_upper, valid_mask=size_valid_mask, penalty=penalty, reduction="none"
        )
        per_image = per_image + size_weight * size_term
    return reduce(per_image, reduction)


class PointLoss(nn.Module):
    """Module form of :func:`point_loss`; stores its options only (bounds are data, passed to ``forward``)."""

    def __init__(
        self,
        *,
        negative_weight: float = 1.0,
        size_weight: float = 1.0,
        penalty: Penalty = "quadratic",
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        self.negative_weight = negative_weight
        self.size_weight = size_weight
        self.penalty: Penalty = penalty
        self.reduction: Reduction = reduction

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        valid_mask: torch.Tensor | None = None,
        size_lower: torch.Tensor | None = None,
        size_upper: torch.Tensor | None = None,
        size_valid_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return point_loss(
            logits,
            target,
            valid_mask=valid_mask,
            negative_weight=self.negative_weight,
            size_lower=size_lower,
            size_upper=size_upper,
            size_valid_mask=size_valid_mask,
            size_weight=self.size_weight,
            penalty=self.penalty,
            reduction=self.reduction,
        )
