"""Quality filtering of pseudo-labels: drop or down-weight pixels by confidence, keep what two generators agree on.

Pseudo-labels are label maps with ``IGNORE`` where unknown, paired with a per-pixel confidence in ``[0, 1]``
(the random walker's probability margin, a CAM value, a region-growing distance, ...). The training losses
read a label map and a per-pixel weight; these functions produce them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from frugalseg.data.case import IGNORE

__all__ = ["agreement_filter", "filter_by_confidence", "label_agreement"]

FilterMode = Literal["drop", "weight", "both"]


def _pair(label: np.ndarray, other: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    label, other = np.asarray(label), np.asarray(other)
    if label.shape != other.shape or label.ndim != 2:
        raise ValueError(f"{what}: shapes {label.shape} and {other.shape}; expected two equal (H, W) arrays")
    return label, other


def filter_by_confidence(
    label: np.ndarray,
    confidence: np.ndarray,
    *,
    threshold: float = 0.0,
    mode: FilterMode = "drop",
) -> tuple[np.ndarray, np.ndarray]:
    """Drop (``IGNORE``) and/or down-weight pseudo-labelled pixels by confidence.

    Args:
        label: pseudo-label map, ``IGNORE`` where unknown.
        confidence: per-pixel confidence in ``[0, 1]``.
        threshold: pixels with confidence below it are dropped (modes ``"drop"`` and ``"both"``).
        mode: ``"drop"`` (weight 1 on kept pixels), ``"weight"`` (weight = confidence, nothing dropped),
            ``"both"`` (drop below ``threshold``, weight = confidence).

    Returns:
        ``(label, weight)``: ``uint8`` map and ``float32`` weights (0 on ``IGNORE`` pixels).

    Shape:
        ``(H, W)``, ``(H, W)`` -> ``(H, W)``, ``(H, W)``.
    """
    label, confidence = _pair(label, confidence, "filter_by_confidence")
    if mode not in ("drop", "weight", "both"):
        raise ValueError(f"mode={mode!r}: expected 'drop', 'weight' or 'both'")
    confidence = np.clip(np.asarray(confidence, dtype=np.float32), 0.0, 1.0)
    out = label.astype(np.uint8, copy=True)
    if mode in ("drop", "both"):
        out[confidence < threshold] = IGNORE
    weight = np.ones(out.shape, dtype=np.float32) if mode == "drop" else confidence.copy()
    weight[out == IGNORE] = 0.0
    return out, weight


def agreement_filter(
    label_a: np.ndarray,
    label_b: np.ndarray,
    *,
    confidence_a: np.ndarray | None = None,
    confidence_b: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the pixels where two pseudo-label generators give the same class; the rest become ``IGNORE``.

    Returns:
        ``(label, confidence)``: ``uint8`` map and ``float32`` confidence, the mean of the two confidences
        (1 where not given) on agreeing pixels and 0 elsewhere.

    Shape:
        ``(H, W)`` each -> ``(H, W)``, ``(H, W)``.
    """
    label_a, label_b = _pair(label_a, label_b, "agreement_filter")
    agree = (label_a == label_b) & (label_a != IGNORE)
    ones = np.ones(label_a.shape, dtype=np.float32)
    a = ones if confidence_a is None else np.asarray(confidence_a, dtype=np.float32)
    b = ones if confidence_b is None else np.asarray(confidence_b, dtype=np.float32)
    label = np.where(agree, label_a, IGNORE).astype(np.uint8)
    return label, np.where(agree, (a + b) / 2, 0.0).astype(np.float32)


def label_agreement(label_a: np.ndarray, label_b: np.ndarray, *, num_classes: int) -> float:
    """Mean foreground Dice between two pseudo-label maps over the pixels both label (an image-level weight).

    A class absent from both maps is left out of the mean; with no foreground class in either map the
    agreement is the fraction of agreeing pixels. No pixel labelled by both gives 0.
    """
    label_a, label_b = _pair(label_a, label_b, "label_agreement")
    both = (label_a != IGNORE) & (label_b != IGNORE)
    if not both.any():
        return 0.0
    a, b = label_a[both], label_b[both]
    scores = []
    for c in range(1, num_classes):
        in_a, in_b = a == c, b == c
        total = int(in_a.sum() + in_b.sum())
        if total:
            scores.append(2.0 * float((in_a & in_b).sum()) / total)
    return float(np.mean(scores)) if scores else float((a == b).mean())
