"""Segmentation quality estimated without ground truth, from a predicted error map.

The error map ``e`` (``e_i`` = predicted probability that pixel ``i`` is mislabelled) comes from the error
branch of the segmentation-quality network. From it and the predicted label map we estimate, per image, the
expected confusion counts of every class and hence its Dice, and reduce them to one image quality score
used to rank images for expert review (worst first).

Estimator (class ``c``, predicted labels ``y``, error probabilities ``e``, probabilities ``p``)::

    TP_c = sum_{i: y_i = c} (1 - e_i)         a pixel predicted c is right with probability 1 - e_i
    FP_c = sum_{i: y_i = c} e_i               ... and wrong with probability e_i
    FN_c = sum_{i: y_i != c} e_i * q_ic       a pixel predicted otherwise is wrong with probability e_i and,
                                              if wrong, truly c with probability q_ic
    Dice_c = 2 TP_c / (2 TP_c + FP_c + FN_c)

``q_ic`` is the segmentation's own belief about the true class *given* that its top choice is wrong: the
softmax renormalised over the non-predicted classes, ``q_ic = p_ic / (1 - p_{i, y_i})`` (``y_i`` is the
argmax, so ``p_{i, y_i}`` is the largest probability). Without probabilities, ``q_ic = 1 / (C - 1)``
(uniform). In the binary case ``q = 1`` exactly, so when ``e`` equals the true error indicator the three
counts — and the Dice — are exact. ``q`` is smoothed by a tiny ``eps`` so that one-hot probabilities give
the uniform fallback rather than 0/0. Empty rule: a class absent from the prediction with no expected missed
pixel (``2TP + FP + FN = 0``) scores Dice 1 (nothing to find, nothing found). The estimate is a ratio of
expected counts, not the expected ratio; the two agree closely once an object spans more than a few pixels.
"""

from __future__ import annotations

import torch

from frugalseg.models.sqa import prior_logit_shift

__all__ = ["image_quality_score", "predicted_dice", "predicted_error_fraction", "quality_from_logits"]

_EPS = 1e-6


def _squeeze_error(error_prob: torch.Tensor) -> torch.Tensor:
    if error_prob.ndim == 4 and error_prob.shape[1] == 1:
        error_prob = error_prob[:, 0]
    if error_prob.ndim != 3:
        raise ValueError(f"expected error_prob (B, H, W) or (B, 1, H, W), got {tuple(error_prob.shape)}")
    return error_prob


def predicted_error_fraction(error_prob: torch.Tensor, *, foreground_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Expected fraction of mislabelled pixels per image: the mean of ``error_prob``.

    Args:
        error_prob: predicted probability that each pixel is wrong.
        foreground_mask: if given, the mean is taken over these pixels only (e.g. the predicted foreground,
            possibly dilated). Empty rule: an image with an empty mask scores 0.

    Shape:
        ``error_prob: (B, H, W)`` or ``(B, 1, H, W)``, ``foreground_mask: (B, H, W)`` bool -> ``(B,)``.
    """
    error_prob = _squeeze_error(error_prob)
    if foreground_mask is None:
        return error_prob.flatten(1).mean(dim=1)
    if foreground_mask.shape != error_prob.shape:
        raise ValueError(
            f"foreground_mask {tuple(foreground_mask.shape)} must match error_prob {tuple(error_prob.shape)}"
        )
    mask = foreground_mask.to(error_prob.dtype).flatten(1)
    return (error_prob.flatten(1) * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1)


def predicted_dice(
    pred_labels: torch.Tensor,
    error_prob: torch.Tensor,
    *,
    num_classes: int,
    probabilities: torch.Tensor | None = None,
) -> torch.Tensor:
    """Expected per-class Dice of a prediction, estimated from its predicted error map (see module docstring).

    Args:
        pred_labels: predicted label map (the argmax of ``probabilities`` when those are given).
        error_prob: predicted probability in ``[0, 1]`` that each pixel is mislabelled.
        num_classes: classes ``C``, background (0) included.
        probabilities: optional softmax map, used to share a wrong pixel's mass among the other classes.

    Returns:
        Estimated Dice of each foreground class ``1..C-1``, in ``[0, 1]``.

    Shape:
        ``pred_labels: (B, H, W)`` int, ``error_prob: (B, H, W)`` or ``(B, 1, H, W)``,
        ``probabilities: (B, C, H, W)`` -> ``(B, C - 1)``.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    error_prob = _squeeze_error(error_prob)
    if pred_labels.shape != error_prob.shape:
        raise ValueError(f"pred_labels {tuple(pred_labels.shape)} != error_prob {tuple(error_prob.shape)}")
    if bool(((pred_labels < 0) | (pred_labels >= num_classes)).any()):
        raise ValueError(f"pred_labels must lie in [0, {num_classes - 1}]")
    e = error_prob.float().clamp(0.0, 1.0)
    onehot = torch.nn.functional.one_hot(pred_labels.long(), num_classes).permute(0, 3, 1, 2).to(e.dtype)
    e_c = e.unsqueeze(1)  # (B, 1, H, W)
    if probabilities is None:
        q = (1.0 - onehot) / (num_classes - 1)
    else:
        expected = (pred_labels.shape[0], num_classes, *pred_labels.shape[1:])
        if tuple(probabilities.shape) != expected:
            raise ValueError(f"expected probabilities of shape {expected}, got {tuple(probabilities.shape)}")
        p = probabilities.float() + _EPS / num_classes
        others = p * (1.0 - onehot)
        q = others / others.sum(dim=1, keepdim=True).clamp_min(1e-12)
    tp = ((1.0 - e_c) * onehot).flatten(2).sum(-1)
    fp = (e_c * onehot).flatten(2).sum(-1)
    fn = (e_c * q * (1.0 - onehot)).flatten(2).sum(-1)
    denominator = 2.0 * tp + fp + fn
    dice = torch.where(denominator > _EPS, 2.0 * tp / denominator.clamp_min(_EPS), torch.ones_like(tp))
    return dice[:, 1:]


def image_quality_score(
    pred_labels: torch.Tensor,
    error_prob: torch.Tensor,
    *,
    num_classes: int,
    probabilities: torch.Tensor | None = None,
) -> torch.Tensor:
    """One quality number per image: the mean predicted Dice over the foreground classes (1 = perfect).

    Shape:
        as :func:`predicted_dice` -> ``(B,)``.
    """
    dice = predicted_dice(pred_labels, error_prob, num_classes=num_classes, probabilities=probabilities)
    return dice.mean(dim=1)


def quality_from_logits(
    logits: torch.Tensor, error_logits: torch.Tensor, *, error_prevalence: float | None = None
) -> torch.Tensor:
    """:func:`image_quality_score` straight from the two outputs of the segmentation-quality network.

    Args:
        logits: segmentation logits.
        error_logits: error-map logits.
        error_prevalence: fraction ``pi`` of wrong pixels in the data the error head was trained on. A head
            trained with class-balanced BCE (:func:`~frugalseg.quality.error_targets.class_balanced_bce`)
            outputs the error posterior under a 50/50 prior, which over-states errors when they are rare;
            given ``pi``, its logits are shifted by ``log(pi / (1 - pi))`` (Bayes' prior correction) to give
            calibrated probabilities. ``None`` uses the logits as they are.

    Shape:
        ``logits: (B, C, H, W)``, ``error_logits: (B, 1, H, W)`` -> ``(B,)``.
    """
    if logits.ndim != 4:
        raise ValueError(f"expected logits of shape (B, C, H, W), got {tuple(logits.shape)}")
    error_logits = error_logits.detach().float()
    if error_prevalence is not None:
        error_logits = error_logits + prior_logit_shift(error_prevalence)
    probabilities = torch.softmax(logits.detach().float(), dim=1)
    return image_quality_score(
        probabilities.argmax(dim=1),
        torch.sigmoid(error_logits),
        num_classes=logits.shape[1],
        probabilities=probabilities,
    )
