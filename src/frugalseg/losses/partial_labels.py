"""Marginal and exclusion losses for partially labelled datasets (Shi et al. 2021).

Shi, Xiang, et al. "Marginal loss and exclusion loss for partially supervised multi-organ segmentation"
(Medical Image Analysis, 2021). Each image annotates only some classes (``annotated``, a ``(B, C)`` bool
tensor); pixels of the classes it does not annotate are labelled background (0) in ``target``.

* **Marginal cross-entropy**: the probabilities of the classes not annotated in an image are merged into
  background, ``q_0 = p_0 + sum_{c not annotated} p_c`` and ``q_c = p_c`` otherwise, and cross-entropy is
  taken on ``q``. With every class annotated ``q = p`` and it is exactly cross-entropy.
* **Exclusion loss**: a pixel labelled with one class cannot belong to another, so for each foreground class
  ``c`` the *exclusion region* ``e_c`` is the set of labelled pixels whose label is another foreground class;
  predicted ``p_c`` there is penalised, either as the Dice overlap ``2 sum(e_c p_c) / (sum(e_c) + sum(p_c))``
  (``mode="dice"``, the paper's exclusion Dice) or as ``mean_{e_c} -log(1 - p_c)`` (``mode="ce"``). Both
  are 0 for a perfect prediction. Per image the class terms are averaged over the foreground classes.

Column 0 of ``annotated`` (background) is ignored: background always receives the merged probability mass.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from frugalseg.losses._checks import (
    Reduction,
    check_logits,
    check_reduction,
    check_target,
    labelled_mask,
    reduce,
)
from frugalseg.losses._ops import log1mexp

__all__ = [
    "ExclusionLoss",
    "MarginalCrossEntropy",
    "MarginalExclusionLoss",
    "exclusion_loss",
    "marginal_cross_entropy",
    "marginal_exclusion_loss",
]

ExclusionMode = Literal["dice", "ce"]
_MODES = ("dice", "ce")


def _prepare(
    logits: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor, valid_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate inputs; return ``(labelled, safe_target, annotated)`` on the device of ``logits``."""
    batch, num_classes, _, _ = check_logits(logits, min_classes=2)
    if not isinstance(annotated, torch.Tensor) or tuple(annotated.shape) != (batch, num_classes):
        got = tuple(annotated.shape) if isinstance(annotated, torch.Tensor) else type(annotated).__name__
        raise ValueError(f"annotated shape {got}: expected (B, C) = {(batch, num_classes)}")
    if annotated.dtype != torch.bool:
        raise ValueError(f"annotated dtype {annotated.dtype}: expected torch.bool")
    annotated = annotated.to(logits.device)
    if isinstance(target, torch.Tensor):
        target = target.to(logits.device)
    check_target(target, logits)
    labelled = labelled_mask(target, valid_mask)
    check_target(target, logits, valid=labelled)
    safe_target = torch.where(labelled, target.long(), torch.zeros_like(target, dtype=torch.long))
    known = annotated.clone()
    known[:, 0] = True
    allowed = torch.gather(known, 1, safe_target.flatten(1)).view_as(safe_target)
    if not bool(allowed.all()):
        image, row, col = (int(i) for i in torch.nonzero(~allowed)[0])
        label = int(safe_target[image, row, col])
        raise ValueError(
            f"target label {label} in image {image} at (row {row}, col {col}) but "
            f"annotated[{image}, {label}] is False: expected unannotated classes to be labelled 0"
        )
    return labelled, safe_target, annotated


def marginal_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    annotated: torch.Tensor,
    *,
    valid_mask: torch.Tensor | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Cross-entropy after merging unannotated classes into background (see the module docstring).

    Pixels with ``target == IGNORE`` or ``valid_mask`` False are excluded, as in
    :func:`frugalseg.losses.partial_cross_entropy`; ``"mean"`` averages over the labelled pixels of the batch
    and ``"none"`` returns the per-pixel map with zeros at excluded pixels.

    Args:
        logits: raw class scores; class 0 is background.
        target: class indices; 0 also for unannotated classes; ``IGNORE`` (255) where unlabelled.
        annotated: which classes each image annotates (column 0 ignored).
        valid_mask: True where the label counts; ``None`` means everywhere not ``IGNORE``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Shape:
        ``logits (B, C, H, W)``, ``target (B, H, W)`` int64, ``annotated (B, C)`` bool,
        ``valid_mask (B, H, W)`` bool -> scalar, or ``(B, H, W)`` for ``"none"``.
    """
    check_reduction(reduction)
    labelled, safe_target, annotated = _prepare(logits, target, annotated, valid_mask)
    log_probs = torch.log_softmax(logits, dim=1)
    merged = ~annotated
    merged[:, 0] = True
    background = torch.logsumexp(log_probs.masked_fill(~merged[:, :, None, None], -math.inf), dim=1)
    picked = torch.gather(log_probs, 1, safe_target.unsqueeze(1)).squeeze(1)
    per_pixel = -torch.where(safe_target == 0, background, picked) * labelled.to(logits.dtype)
    return reduce(per_pixel, reduction, count=labelled.sum())


def exclusion_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    annotated: torch.Tensor,
    *,
    valid_mask: torch.Tensor | None = None,
    mode: ExclusionMode = "dice",
    smooth: float = 1e-5,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Penalty on predicting a class where another foreground class is labelled (see the module docstring).

    Args:
        logits: raw class scores; class 0 is background.
        target: class indices; 0 also for unannotated classes; ``IGNORE`` (255) where unlabelled.
        annotated: which classes each image annotates (column 0 ignored).
        valid_mask: True where the label counts; ``None`` means everywhere not ``IGNORE``.
        mode: ``"dice"`` (exclusion Dice; sums of ``p_c`` over the labelled pixels) or ``"ce"``.
        smooth: additive smoothing of the Dice denominator, ``> 0``.
        reduction: over images: ``"mean"``, ``"sum"``, or ``"none"`` for per-image losses.

    Shape:
        ``logits (B, C, H, W)``, ``target (B, H, W)`` int64, ``annotated (B, C)`` bool,
        ``valid_mask (B, H, W)`` bool -> scalar, or ``(B,)``.
    """
    check_reduction(reduction)
    if mode not in _MODES:
        raise ValueError(f"mode={mode!r}: expected one of {', '.join(map(repr, _MODES))}")
    if not smooth > 0:
        raise ValueError(f"smooth={smooth}: expected a positive number")
    labelled, safe_target, _ = _prepare(logits, target, annotated, valid_mask)
    num_classes = int(logits.shape[1])
    classes = torch.arange(1, num_classes, device=logits.device).view(1, -1, 1, 1)
    foreground = (labelled & (safe_target > 0)).unsqueeze(1)
    exclusion = (foreground & (safe_target.unsqueeze(1) != classes)).to(logits.dtype)
    log_probs = torch.log_softmax(logits, dim=1)[:, 1:]
    if mode == "dice":
        probs = log_probs.exp() * labelled.unsqueeze(1).to(logits.dtype)
        overlap = 2.0 * (exclusion * probs).sum(dim=(2, 3))
        per_class = overlap / (exclusion.sum(dim=(2, 3)) + probs.sum(dim=(2, 3)) + smooth)
    else:
        per_class = -(log1mexp(log_probs) * exclusion).sum(dim=(2, 3)) / exclusion.sum(dim=(2, 3)).clamp_min(1.0)
    return reduce(per_class.mean(dim=1), reduction)


def marginal_exclusion_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    annotated: torch.Tensor,
    *,
    valid_mask: torch.Tensor | None = None,
    exclusion_weight: float = 1.0,
    mode: ExclusionMode = "dice",
    smooth: float = 1e-5,
) -> torch.Tensor:
    """``marginal_cross_entropy`` (``"mean"``) ``+ exclusion_weight * exclusion_loss`` (``"mean"``).

    Shape:
        ``logits (B, C, H, W)``, ``target (B, H, W)`` int64, ``annotated (B, C)`` bool,
        ``valid_mask (B, H, W)`` bool -> scalar.
    """
    marginal = marginal_cross_entropy(logits, target, annotated, valid_mask=valid_mask)
    exclusion = exclusion_loss(logits, target, annotated, valid_mask=valid_mask, mode=mode, smooth=smooth)
    return marginal + exclusion_weight * exclusion


class MarginalCrossEntropy(nn.Module):
    """Module form of :func:`marginal_cross_entropy`; stores ``reduction`` only."""

    def __init__(self, *, reduction: Reduction = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        self.reduction: Reduction = reduction

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        annotated: torch.Tensor,
        valid_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return marginal_cross_entropy(logits, target, annotated, valid_mask=valid_mask, reduction=self.reduction)


class ExclusionLoss(nn.Module):
    """Module form of :func:`exclusion_loss`; stores its options only."""

    def __init__(self, *, mode: ExclusionMode = "dice", smooth: float = 1e-5, reduction: Reduction = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        if mode not in _MODES:
            raise ValueError(f"mode={mode!r}: expected one of {', '.join(map(repr, _MODES))}")
        self.mode: ExclusionMode = mode
        self.smooth = smooth
        self.reduction: Reduction = reduction

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        annotated: torch.Tensor,
        valid_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return exclusion_loss(
            logits,
            target,
            annotated,
            valid_mask=valid_mask,
            mode=self.mode,
            smooth=self.smooth,
            reduction=self.reduction,
        )


class MarginalExclusionLoss(nn.Module):
    """Module form of :func:`marginal_exclusion_loss`; stores its options only."""

    def __init__(self, *, exclusion_weight: float = 1.0, mode: ExclusionMode = "dice", smooth: float = 1e-5) -> None:
        super().__init__()
        if mode not in _MODES:
            raise ValueError(f"mode={mode!r}: expected one of {', '.join(map(repr, _MODES))}")
        self.exclusion_weight = exclusion_weight
        self.mode: ExclusionMode = mode
        self.smooth = smooth

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        annotated: torch.Tensor,
        valid_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return marginal_exclusion_loss(
            logits,
            target,
            annotated,
            valid_mask=valid_mask,
            exclusion_weight=self.exclusion_weight,
            mode=self.mode,
            smooth=self.smooth,
        )
