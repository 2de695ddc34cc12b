"""Training targets for a predicted error map: where is the segmentation wrong, and a balanced loss for it.

The error target is recomputed from the *current* segmentation at every step (it moves as the segmentation
improves), from detached logits so that no gradient flows through the argmax.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from frugalseg.data.case import IGNORE

__all__ = ["class_balance_weights", "class_balanced_bce", "error_target"]


def error_target(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel indicator of a wrong prediction, ``argmax(logits) != target``, and where it is defined.

    Args:
        logits: segmentation logits (detached internally).
        target: label map; ``IGNORE`` (255) marks unlabelled pixels, excluded through ``valid_mask``.

    Returns:
        ``(error, valid_mask)``: ``error`` is 1.0 where the prediction differs from the label and 0.0
        elsewhere (also 0.0 at invalid pixels); ``valid_mask`` is ``target != IGNORE``.

    Raises:
        ValueError: shapes disagree or ``target`` holds a value that is neither a class index nor ``IGNORE``.

    Shape:
        ``logits: (B, C, H, W)``, ``target: (B, H, W)`` -> ``error: (B, H, W)`` float,
        ``valid_mask: (B, H, W)`` bool.
    """
    if logits.ndim != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"expected logits (B, C, H, W) and target (B, H, W), got {tuple(logits.shape)}, {tuple(target.shape)}"
        )
    num_classes = logits.shape[1]
    valid_mask = target != IGNORE
    if bool(((target < 0) | (target >= num_classes))[valid_mask].any()):
        raise ValueError(f"target values must lie in [0, {num_classes - 1}] or equal IGNORE={IGNORE}")
    prediction = logits.detach().argmax(dim=1)
    error = ((prediction != target) & valid_mask).to(logits.dtype)
    return error, valid_mask


def class_balance_weights(error: torch.Tensor, *, valid_mask: torch.Tensor) -> tuple[float, float]:
    """Weights ``(w_pos, w_neg)`` giving error and correct pixels equal total weight.

    With ``N`` valid pixels of which ``P`` are errors: ``w_pos = N / (2P)`` and ``w_neg = N / (2(N - P))``, so
    ``sum(weights) = N`` and each class contributes half. If one class is absent the other gets weight 1.

    Shape:
        ``error: (B, H, W)`` in ``{0, 1}``, ``valid_mask: (B, H, W)`` bool.
    """
    total = float(valid_mask.sum())
    positives = float(error[valid_mask].sum())
    negatives = total - positives
    if positives == 0 or negatives == 0:
        return 1.0, 1.0
    return total / (2.0 * positives), total / (2.0 * negatives)


def class_balanced_bce(
    error_logits: torch.Tensor,
    error_target: torch.Tensor,
    *,
    valid_mask: torch.Tensor,
    reduction: Literal["mean", "sum", "none"] = "mean",
) -> torch.Tensor:
    """Binary cross-entropy on the error map with the class balance of :func:`class_balance_weights`.

    Errors are usually a few percent of the pixels; without balancing the error head learns to predict
    "never wrong". Weights are computed over the whole batch (steadier than per image) and treated as
    constants.

    Args:
        error_logits: logits of the predicted error map.
        error_target: 1.0 where the segmentation is wrong, 0.0 where right.
        valid_mask: pixels that count.
        reduction: ``"mean"`` (weighted sum / number of valid pixels, i.e. the average of the mean loss over
            errors and the mean loss over correct pixels), ``"sum"``, or ``"none"`` (per-pixel weighted loss,
            zero at invalid pixels). With no valid pixel, ``"mean"`` returns a zero that keeps the graph.

    Shape:
        ``error_logits: (B, 1, H, W)`` or ``(B, H, W)``; ``error_target, valid_mask: (B, H, W)`` ->
        scalar, or ``(B, H, W)`` for ``reduction="none"``.
    """
    if error_logits.ndim == 4 and error_logits.shape[1] == 1:
        error_logits = error_logits[:, 0]
    if error_logits.shape != error_target.shape or valid_mask.shape != error_target.shape:
        raise ValueError(
            "expected error_logits (B, 1, H, W) or (B, H, W) matching error_target and valid_mask (B, H, W), "
            f"got "
            f"{tuple(error_logits.shape)}, {tuple(error_target.shape)} and {tuple(valid_mask.shape)}"
        )
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    valid = valid_mask.bool()
    target = error_target.to(error_logits.dtype)
    w_pos, w_neg = class_balance_weights(target, valid_mask=valid)
    weights = torch.where(target > 0.5, w_pos, w_neg) * valid.to(error_logits.dtype)
    per_pixel = F.binary_cross_entropy_with_logits(error_logits, target, reduction="none") * weights
    if reduction == "none":
        return per_pixel
    if reduction == "sum":
        return per_pixel.sum()
    return per_pixel.sum() / valid.sum().clamp_min(1)
