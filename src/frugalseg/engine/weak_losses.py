"""The training objective of each weak-label kind and method, composed from :mod:`frugalseg.losses`.

=================================  =========================================================================
kind / method                      objective (``w_*`` from :class:`~frugalseg.engine.weak_config.WeakConfig`)
=================================  =========================================================================
full / dice_ce                     ``dice_ce_loss``
scribbles / partial_ce, pseudo,    pixel objective: confidence-weighted partial CE ``+ w_dice`` soft Dice on
any pseudo-label method            the labelled pixels ``+ w_crf`` gated CRF
boxes / tightness                  box MIL tightness (smooth max) with ``w_empty`` emptiness outside boxes
                                   ``+ w_size`` log-barrier size bounds from the boxes (``t`` grows per epoch)
                                   ``+ w_crf`` gated CRF ``+ w_self`` box-constrained self-training
points / point_loss                CE at clicks ``+ w_size`` quadratic size bounds for clicked classes
                                   ``+ w_crf`` gated CRF
partial / marginal_exclusion       marginal CE ``+ w_dice`` marginal Dice ``+ w_excl`` exclusion (Dice form)
=================================  =========================================================================

With a complete label (every pixel scribbled, every class annotated, weights 1) and ``w_crf = 0``, the pixel
and partial objectives equal :func:`~frugalseg.losses.dice_ce_loss` (``w_dice = 1``, ``w_excl = 0``).
"""

from __future__ import annotations

import math

import torch

from frugalseg.data.case import IGNORE
from frugalseg.engine.weak_config import WeakConfig
from frugalseg.engine.weak_targets import WeakBatch
from frugalseg.losses import (
    box_mask,
    box_tightness_loss,
    crf_loss,
    dice_ce_loss,
    dice_loss,
    exclusion_loss,
    marginal_cross_entropy,
    partial_cross_entropy,
    point_loss,
    size_bounds_from_boxes,
    size_constraint_loss,
)

__all__ = ["marginal_dice_loss", "weak_loss", "weighted_partial_cross_entropy"]


def weighted_partial_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum(weight * CE) / (number of labelled pixels)`` over the batch; ``weight == 1`` gives partial CE.

    Pixels with ``target == IGNORE`` or ``weight == 0`` are left out.

    Shape:
        ``logits (B, C, H, W)``, ``target (B, H, W)`` int64, ``weight (B, H, W)`` float -> scalar.
    """
    labelled = (target != IGNORE) & (weight > 0)
    per_pixel = partial_cross_entropy(logits, target, valid_mask=labelled, reduction="none")
    return (per_pixel * weight.to(logits.dtype)).sum() / labelled.sum().clamp_min(1).to(logits.dtype)


def marginal_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    annotated: torch.Tensor,
    *,
    smooth: float = 1e-5,
) -> torch.Tensor:
    """Soft Dice after merging each image's unannotated classes into background (Shi et al. 2021).

    ``q_0 = p_0 + sum of p_c over unannotated c``, ``q_c = p_c`` for annotated ``c`` and 0 otherwise; the
    foreground Dice of ``q`` against the one-hot target is averaged over classes with batch sums, exactly as
    :func:`~frugalseg.losses.dice_loss`, to which it reduces when every class is annotated.

    Shape:
        ``logits (B, C, H, W)``, ``target (B, H, W)`` int64 (``IGNORE`` unlabelled), ``annotated (B, C)`` bool
        -> scalar.
    """
    num_classes = int(logits.shape[1])
    labelled = (target != IGNORE).unsqueeze(1).to(logits.dtype)
    keep = annotated.clone()
    keep[:, 0] = True
    keep_f = keep[:, :, None, None].to(logits.dtype)
    probs = torch.softmax(logits, dim=1)
    merged = (probs * (1 - keep_f)).sum(dim=1, keepdim=True)
    q = probs * keep_f
    q = torch.cat([q[:, :1] + merged, q[:, 1:]], dim=1) * labelled
    safe = torch.where(target == IGNORE, torch.zeros_like(target), target)
    one_hot = torch.nn.functional.one_hot(safe, num_classes).permute(0, 3, 1, 2).to(logits.dtype) * labelled
    dims = (0, 2, 3)
    intersection = (q * one_hot).sum(dims)
    volumes = q.sum(dims) + one_hot.sum(dims)
    per_class = 1.0 - (2.0 * intersection + smooth) / (volumes + smooth)
    return per_class[1:].mean()


def _crf(logits: torch.Tensor, batch: WeakBatch, weak: WeakConfig) -> torch.Tensor:
    return crf_loss(
        logits,
        batch.images,
        valid_mask=batch.inside,
        kernel_size=weak.crf_kernel,
        sigma_xy=weak.crf_sigma_xy,
        sigma_rgb=weak.crf_sigma_rgb,
    )


def _pixel_objective(logits: torch.Tensor, batch: WeakBatch, weak: WeakConfig) -> torch.Tensor:
    loss = weighted_partial_cross_entropy(logits, batch.label, batch.weight)
    if weak.dice_weight > 0:
        loss = loss + weak.dice_weight * dice_loss(logits, batch.label, valid_mask=batch.weight > 0)
    return loss


def _box_objective(logits: torch.Tensor, batch: WeakBatch, weak: WeakConfig, epoch: int) -> torch.Tensor:
    _, num_classes, height, width = logits.shape
    loss = box_tightness_loss(
        logits,
        batch.boxes,
        valid_mask=batch.inside,
        alpha=weak.smooth_max_alpha,
        negative_weight=weak.emptiness_weight,
    )
    if weak.size_weight > 0:
        low, high = weak.box_size_fractions
        lower, upper, valid = size_bounds_from_boxes(
            batch.boxes,
            num_classes=num_classes,
            height=height,
            width=width,
            lower_fraction=low,
            upper_fraction=high,
            device=logits.device,
        )
        t = weak.barrier_t * weak.barrier_growth**epoch
        loss = loss + weak.size_weight * size_constraint_loss(
            logits, lower, upper, valid_mask=valid, penalty="log_barrier", t=min(t, 1e4)
        )
    if weak.self_training_weight > 0 and epoch >= weak.self_training_start:
        with torch.no_grad():
            allowed = box_mask(batch.boxes, num_classes=num_classes, height=height, width=width, device=logits.device)
            allowed[:, 0] = True
            probs = torch.softmax(logits.detach(), dim=1) * allowed
            confidence, target = probs.max(dim=1)
            keep = (confidence >= weak.self_training_confidence) & batch.inside
            target = torch.where(keep, target, torch.full_like(target, IGNORE))
        loss = loss + weak.self_training_weight * partial_cross_entropy(logits, target)
    return loss


def _point_objective(logits: torch.Tensor, batch: WeakBatch, weak: WeakConfig) -> torch.Tensor:
    b, num_classes, height, width = logits.shape
    clicks = batch.label != IGNORE
    if weak.size_weight <= 0:
        return point_loss(logits, batch.label, valid_mask=clicks)
    classes = torch.arange(num_classes, device=logits.device).view(1, -1, 1, 1)
    clicked = ((batch.label.unsqueeze(1) == classes) & clicks.unsqueeze(1)).flatten(2).any(dim=2)
    clicked[:, 0] = False
    area = float(height * width)
    low, high = weak.point_size_fractions
    lower = torch.full((b, num_classes), low * area, device=logits.device)
    upper = torch.full((b, num_classes), high * area, device=logits.device)
    return point_loss(
        logits,
        batch.label,
        valid_mask=clicks,
        size_lower=lower,
        size_upper=upper,
        size_valid_mask=clicked,
        size_weight=weak.size_weight,
        penalty="quadratic",
    )


def _partial_objective(logits: torch.Tensor, batch: WeakBatch, weak: WeakConfig) -> torch.Tensor:
    loss = marginal_cross_entropy(logits, batch.label, batch.annotated)
    if weak.dice_weight > 0:
        loss = loss + weak.dice_weight * marginal_dice_loss(logits, batch.label, batch.annotated)
    if weak.exclusion_weight > 0:
        loss = loss + weak.exclusion_weight * exclusion_loss(logits, batch.label, batch.annotated)
    return loss


def weak_loss(logits: torch.Tensor, batch: WeakBatch, *, weak: WeakConfig, epoch: int = 0) -> torch.Tensor:
    """The objective of ``weak.labels`` / ``weak.method`` on one batch (see the module docstring).

    Args:
        logits: network output for ``batch.images``.
        batch: the targets of the batch.
        weak: kind, method and loss weights.
        epoch: 0-based epoch (log-barrier schedule, self-training start).

    Shape:
        ``logits (B, C, S, S)`` -> scalar.
    """
    if not math.isfinite(float(epoch)) or epoch < 0:
        raise ValueError(f"epoch={epoch}: expected an integer >= 0")
    kind = weak.labels
    if kind == "full":
        return dice_ce_loss(logits, batch.label)
    if kind == "boxes" and weak.method == "tightness":
        loss = _box_objective(logits, batch, weak, epoch)
    elif kind == "points" and weak.method == "point_loss":
        loss = _point_objective(logits, batch, weak)
    elif kind == "partial":
        return _partial_objective(logits, batch, weak)
    else:
        loss = _pixel_objective(logits, batch, weak)
    if weak.crf_weight > 0:
        loss = loss + weak.crf_weight * _crf(logits, batch, weak)
    return loss
