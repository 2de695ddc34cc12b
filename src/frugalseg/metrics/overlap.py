"""Overlap metrics: Dice and Jaccard on boolean masks and a class-matched foreground Dice on label maps (numpy),
and a batched Dice on label maps (torch).

Empty-mask rule, everywhere in this module: when prediction and target are both empty the score is
``1.0`` (nothing to find, nothing found); when exactly one is empty it is ``0.0``.
"""

from __future__ import annotations

import numpy as np
import torch

from frugalseg.data.case import IGNORE
from frugalseg.metrics._checks import as_label_map, as_mask, check_pair

__all__ = ["batch_dice", "dice_score", "foreground_dice", "jaccard_score"]


def _counts(pred: np.ndarray, target: np.ndarray, valid_mask: np.ndarray | None) -> tuple[int, int, int]:
    """Return ``(|pred ∩ target|, |pred|, |target|)`` over the valid pixels."""
    p = as_mask(pred, "pred")
    t = as_mask(target, "target")
    check_pair(p, t)
    if valid_mask is not None:
        v = as_mask(valid_mask, "valid_mask")
        check_pair(p, v)
        p = p & v
        t = t & v
    return int(np.count_nonzero(p & t)), int(np.count_nonzero(p)), int(np.count_nonzero(t))


def dice_score(pred: np.ndarray, target: np.ndarray, *, valid_mask: np.ndarray | None = None) -> float:
    """Dice coefficient ``2|P ∩ T| / (|P| + |T|)`` of two masks, in ``[0, 1]``.

    Empty rule: both masks empty (over the valid pixels) gives ``1.0``; exactly one empty gives ``0.0``.

    Args:
        pred: predicted mask; non-zero is foreground.
        target: reference mask; non-zero is foreground.
        valid_mask: optional mask of the pixels that count; pixels outside it are ignored in both masks.

    Returns:
        The Dice score as a Python float.

    Shape:
        ``pred``, ``target``, ``valid_mask``: ``(H, W)``.
    """
    inter, n_pred, n_target = _counts(pred, target, valid_mask)
    total = n_pred + n_target
    return 1.0 if total == 0 else 2.0 * inter / total


def foreground_dice(pred: np.ndarray, target: np.ndarray, *, valid_mask: np.ndarray | None = None) -> float:
    """Dice of two label maps' foregrounds, a pixel counting as overlap only where the classes agree.

    ``2 |P ∩ T, same class| / (|P| + |T|)``, ``P`` and ``T`` the pixels of any class other than background and
    ``IGNORE``; pixels outside ``valid_mask`` are left out. Empty rule of the module.

    Shape:
        ``pred``, ``target``, ``valid_mask``: ``(H, W)``.
    """
    pred, target = as_label_map(pred, "pred"), as_label_map(target, "target")
    check_pair(pred, target)
    valid = np.ones(pred.shape, dtype=bool) if valid_mask is None else as_mask(valid_mask, "valid_mask")
    check_pair(pred, valid)
    truth = (target != 0) & (target != IGNORE) & valid
    guess = (pred != 0) & (pred != IGNORE) & valid
    total = int(np.count_nonzero(truth)) + int(np.count_nonzero(guess))
    hits = int(np.count_nonzero(truth & guess & (pred == target)))
    return 1.0 if total == 0 else 2.0 * hits / total


def jaccard_score(pred: np.ndarray, target: np.ndarray, *, valid_mask: np.ndarray | None = None) -> float:
    """Jaccard index (intersection over union) ``|P ∩ T| / |P ∪ T|`` of two masks, in ``[0, 1]``.

    Empty rule: both masks empty (over the valid pixels) gives ``1.0``; exactly one empty gives ``0.0``.

    Args:
        pred: predicted mask; non-zero is foreground.
        target: reference mask; non-zero is foreground.
        valid_mask: optional mask of the pixels that count; pixels outside it are ignored in both masks.

    Returns:
        The Jaccard index as a Python float.

    Shape:
        ``pred``, ``target``, ``valid_mask``: ``(H, W)``.
    """
    inter, n_pred, n_target = _counts(pred, target, valid_mask)
    union = n_pred + n_target - inter
    return 1.0 if union == 0 else inter / union


def batch_dice(pred_labels: torch.Tensor, target: torch.Tensor, *, num_classes: int) -> torch.Tensor:
    """Per-image, per-foreground-class Dice of two label-map batches (for validation during training).

    Pixels where ``target == IGNORE`` (255) are excluded from both maps. Empty rule per image and class:
    class absent from both gives ``1.0``; present in exactly one gives ``0.0``. Predicted values outside
    ``[0, num_classes)`` belong to no class. No gradient flows (label maps are discrete).

    Args:
        pred_labels: predicted class indices (e.g. ``logits.argmax(1)``).
        target: reference class indices, ``IGNORE`` where unlabelled.
        num_classes: number of classes including background (class 0, which is not scored).

    Returns:
        Float32 Dice scores on the device of ``pred_labels``; column ``c - 1`` holds class ``c``.

    Shape:
        ``pred_labels``, ``target``: ``(B, H, W)`` integer. Output: ``(B, num_classes - 1)``.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if pred_labels.ndim != 3 or pred_labels.shape != target.shape:
        raise ValueError(
            f"pred_labels and target must both be (B, H, W), got {tuple(pred_labels.shape)} and {tuple(target.shape)}"
        )
    if pred_labels.is_floating_point() or target.is_floating_point():
        raise ValueError(
            f"pred_labels and target must hold integer class indices, got {pred_labels.dtype} and {target.dtype}"
        )
    target = target.to(pred_labels.device)
    valid = (target != IGNORE).unsqueeze(1)  # (B, 1, H, W)
    classes = torch.arange(1, num_classes, device=pred_labels.device).view(1, -1, 1, 1)
    p = (pred_labels.unsqueeze(1) == classes) & valid  # (B, C-1, H, W)
    t = target.unsqueeze(1) == classes
    inter = (p & t).sum(dim=(2, 3)).to(torch.float32)
    total = (p.sum(dim=(2, 3)) + t.sum(dim=(2, 3))).to(torch.float32)
    dice = 2.0 * inter / total.clamp_min(1.0)
    return torch.where(total == 0, torch.ones_like(dice), dice)
