"""How well predicted quality and predicted error maps agree with the truth.

Two questions: does the predicted image quality track the true Dice across images (correlation, mean
absolute error), and does the predicted error map separate truly wrong pixels from right ones
(pixel-level AUROC and average precision, computed here without scikit-learn).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["average_precision", "calibration_report", "error_map_auroc_ap", "rank_auroc"]


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def calibration_report(predicted: Any, true: Any) -> dict[str, float]:
    """Agreement of predicted and true per-image quality (e.g. predicted vs true Dice).

    Args:
        predicted: one predicted value per image (array-like or tensor).
        true: the matching true values.

    Returns:
        ``{"pearson", "spearman", "mae"}``. A correlation is NaN when either input is constant (undefined).

    Raises:
        ValueError: lengths differ, fewer than two values, or a non-finite value.

    Shape:
        ``(N,)`` and ``(N,)``.
    """
    pred = _to_numpy(predicted).astype(np.float64).ravel()
    ref = _to_numpy(true).astype(np.float64).ravel()
    if pred.shape != ref.shape or pred.size < 2:
        raise ValueError(f"expected two sequences of equal length >= 2, got {pred.size} and {ref.size}")
    if not (np.isfinite(pred).all() and np.isfinite(ref).all()):
        raise ValueError("predicted and true values must be finite")
    mae = float(np.abs(pred - ref).mean())
    if np.ptp(pred) == 0 or np.ptp(ref) == 0:
        return {"pearson": float("nan"), "spearman": float("nan"), "mae": mae}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pearson = float(stats.pearsonr(pred, ref)[0])
        spearman = float(stats.spearmanr(pred, ref)[0])
    return {"pearson": pearson, "spearman": spearman, "mae": mae}


def rank_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by the Mann-Whitney rank statistic (ties get mid-ranks, i.e. count 1/2).

    ``AUROC = (R_pos - P (P + 1) / 2) / (P N)`` with ``R_pos`` the sum of the positives' ranks among all
    scores. NaN when either class is absent.

    Shape:
        ``(K,)`` float scores, ``(K,)`` bool labels.
    """
    labels = labels.astype(bool)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = stats.rankdata(scores, method="average")
    rank_sum = float(ranks[labels].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Step-wise average precision ``sum_k (R_k - R_{k-1}) P_k`` over the distinct score thresholds.

    Thresholds are the distinct scores in decreasing order; tied scores enter together (as scikit-learn does).
    NaN when there is no positive.

    Shape:
        ``(K,)`` float scores, ``(K,)`` bool labels.
    """
    labels = labels.astype(bool)
    positives = int(labels.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    true_pos = np.cumsum(labels[order])
    # last index of each block of tied scores
    block_end = np.r_[np.nonzero(np.diff(sorted_scores))[0], sorted_scores.size - 1]
    tp = true_pos[block_end].astype(np.float64)
    precision = tp / (block_end + 1)
    recall = tp / positives
    recall_step = np.diff(np.r_[0.0, recall])
    return float((recall_step * precision).sum())


def error_map_auroc_ap(error_prob: Any, error_target: Any, valid_mask: Any | None = None) -> dict[str, float]:
    """Pixel-level AUROC and average precision of a predicted error map against the true error indicator.

    Args:
        error_prob: predicted probability (or any score) that a pixel is wrong.
        error_target: 1 where the segmentation is truly wrong, 0 where right.
        valid_mask: pixels to include (default: all).

    Returns:
        ``{"auroc", "ap"}``; ``auroc`` is NaN if all valid pixels are of one class, ``ap`` NaN if none is
        wrong.

    Shape:
        any matching shapes, e.g. ``(B, H, W)`` (an error map ``(B, 1, H, W)`` is squeezed).
    """
    scores = _to_numpy(error_prob).astype(np.float64)
    labels = _to_numpy(error_target)
    if scores.ndim == labels.ndim + 1 and scores.shape[1] == 1:
        scores = scores[:, 0]
    if scores.shape != labels.shape:
        raise ValueError(f"error_prob {scores.shape} and error_target {labels.shape} must have one shape")
    labels = labels > 0.5
    if valid_mask is not None:
        valid = _to_numpy(valid_mask).astype(bool)
        if valid.shape != labels.shape:
            raise ValueError(f"valid_mask {valid.shape} must match error_target {labels.shape}")
        scores, labels = scores[valid], labels[valid]
    scores, labels = scores.ravel(), labels.ravel()
    if not np.isfinite(scores).all():
        raise ValueError("error_prob must be finite")
    return {"auroc": rank_auroc(scores, labels), "ap": average_precision(scores, labels)}
