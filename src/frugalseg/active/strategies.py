"""Active-learning strategies as pure scoring functions: inputs in, one score per image out.

Convention: a HIGHER score means "show this image to the expert first". Every function reduces over the
spatial axes explicitly (``reduction``: ``"mean"`` by default, ``"sum"`` or ``"max"``), never owns a model,
and raises ``ValueError`` if any score comes out non-finite. Selections that must break ties do so with a
generator seeded by the caller, so a run replays exactly.

Probability inputs are numpy arrays or tensors, class axis after the batch axis: ``(N, C, *spatial)``,
MC-dropout samples first: ``(T, N, C, *spatial)``. Inputs are converted to float64; scores are per image,
so a large pool can be scored in chunks and concatenated.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, Literal

import numpy as np

__all__ = [
    "STRATEGIES",
    "bald_scores",
    "coreset_selection",
    "entropy_scores",
    "evenly_spaced_selection",
    "predictive_entropy_scores",
    "random_scores",
    "rank_by_score",
    "select_top_k_diverse",
    "sqa_scores",
]

Reduction = Literal["mean", "sum", "max"]

STRATEGIES: dict[str, str] = {
    "random": "uniform random scores (seeded): the baseline every strategy must beat",
    "evenly_spaced": "indices spread evenly over the pool order (e.g. every n-th frame of a pullback)",
    "entropy": "mean per-pixel entropy of the softmax prediction (single forward pass)",
    "bald": "mutual information between prediction and weights under MC-dropout (BALD): model disagreement",
    "predictive_entropy": "entropy of the MC-dropout mean prediction (MONAI Label's 'epistemic' ranking)",
    "coreset": "k-centre greedy in feature space: cover the pool's distribution, ignoring predictions",
    "sqa": "worst predicted segmentation quality first (1 - predicted Dice from the SQA error branch)",
}
"""Name -> one-line description of every strategy in this module."""

_EPS = 1e-12


def _as_array(x: Any, *, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    array = np.asarray(x, dtype=np.float64)
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    return array


def _check_finite(scores: np.ndarray, *, name: str) -> np.ndarray:
    bad = ~np.isfinite(scores)
    if bad.any():
        first = int(np.argmax(bad))
        raise ValueError(f"{name}: {int(bad.sum())} non-finite score(s), the first at index {first}")
    return scores


def _check_probabilities(probs: np.ndarray, *, name: str, class_axis: int) -> None:
    if not np.isfinite(probs).all():
        raise ValueError(f"{name}: probabilities contain non-finite values")
    if (probs < -1e-6).any() or not np.allclose(probs.sum(axis=class_axis), 1.0, atol=1e-3):
        raise ValueError(f"{name}: expected probabilities >= 0 summing to 1 over the class axis")


def _reduce(values: np.ndarray, reduction: Reduction) -> np.ndarray:
    """Reduce ``(N, *spatial)`` to ``(N,)``."""
    flat = values.reshape(values.shape[0], -1)
    if reduction == "mean":
        return flat.mean(axis=1)
    if reduction == "sum":
        return flat.sum(axis=1)
    if reduction == "max":
        return flat.max(axis=1)
    raise ValueError(f"reduction must be 'mean', 'sum' or 'max', got {reduction!r}")


def _entropy(probs: np.ndarray, *, class_axis: int) -> np.ndarray:
    clipped = np.clip(probs, _EPS, 1.0)
    return -(probs * np.log(clipped)).sum(axis=class_axis)


def random_scores(n: int, *, seed: int | np.random.Generator) -> np.ndarray:
    """Uniform random scores in ``[0, 1)``: the random-sampling baseline.

    Shape:
        ``-> (n,)``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return np.random.default_rng(seed).random(n)


def evenly_spaced_selection(n_pool: int, k: int) -> np.ndarray:
    """Indices of ``k`` items spread evenly over a pool of ``n_pool`` (centre of each of ``k`` equal bins).

    Index ``j`` is ``floor((j + 1/2) n_pool / k)``; indices are distinct and increasing because the bin width
    is at least one.

    Shape:
        ``-> (k,)`` int64.
    """
    if not 1 <= k <= n_pool:
        raise ValueError(f"expected 1 <= k <= n_pool, got k={k}, n_pool={n_pool}")
    return np.floor((np.arange(k) + 0.5) * n_pool / k).astype(np.int64)


def entropy_scores(probs: Any, *, reduction: Reduction = "mean") -> np.ndarray:
    """Per-image reduction of the per-pixel entropy ``-sum_c p_c log p_c`` (nats).

    Uniform probabilities give the maximum ``log C``; one-hot probabilities give 0.

    Shape:
        ``probs: (N, C, *spatial)`` -> ``(N,)``.
    """
    array = _as_array(probs, name="entropy_scores")
    if array.ndim < 2:
        raise ValueError(f"entropy_scores: expected probabilities (N, C, *spatial), got shape {array.shape}")
    _check_probabilities(array, name="entropy_scores", class_axis=1)
    return _check_finite(_reduce(_entropy(array, class_axis=1), reduction), name="entropy_scores")


def _check_mc(mc_probs: Any, *, name: str) -> np.ndarray:
    array = _as_array(mc_probs, name=name)
    if array.ndim < 3:
        raise ValueError(f"{name}: expected MC probabilities (T, N, C, *spatial), got shape {array.shape}")
    _check_probabilities(array, name=name, class_axis=2)
    return array


def predictive_entropy_scores(mc_probs: Any, *, reduction: Reduction = "mean") -> np.ndarray:
    """Entropy of the mean of ``T`` stochastic (MC-dropout) predictions, reduced per image.

    Shape:
        ``mc_probs: (T, N, C, *spatial)`` -> ``(N,)``.
    """
    array = _check_mc(mc_probs, name="predictive_entropy_scores")
    entropy = _entropy(array.mean(axis=0), class_axis=1)
    return _check_finite(_reduce(entropy, reduction), name="predictive_entropy_scores")


def bald_scores(mc_probs: Any, *, reduction: Reduction = "mean") -> np.ndarray:
    """BALD: per-pixel mutual information ``H[mean_t p_t] - mean_t H[p_t]``, reduced per image.

    Zero when all samples agree (whatever their entropy); large when confident samples disagree.
    Clipped at 0 against rounding.

    Shape:
        ``mc_probs: (T, N, C, *spatial)`` -> ``(N,)``.
    """
    array = _check_mc(mc_probs, name="bald_scores")
    predictive = _entropy(array.mean(axis=0), class_axis=1)
    expected = _entropy(array, class_axis=2).mean(axis=0)
    return _check_finite(_reduce(np.maximum(predictive - expected, 0.0), reduction), name="bald_scores")


def sqa_scores(predicted_quality: Any) -> np.ndarray:
    """Worst predicted quality first: ``1 - quality`` (quality is a predicted Dice in ``[0, 1]``).

    Shape:
        ``(N,)`` -> ``(N,)``.
    """
    quality = _as_array(predicted_quality, name="sqa_scores").ravel()
    return _check_finite(1.0 - quality, name="sqa_scores")


def rank_by_score(scores: Any, *, seed: int | np.random.Generator = 0) -> np.ndarray:
    """All indices ordered by decreasing score; equal scores in an order drawn from ``seed``.

    Raises:
        ValueError: a non-finite score.

    Shape:
        ``(N,)`` -> ``(N,)`` int64.
    """
    values = _check_finite(_as_array(scores, name="rank_by_score").ravel(), name="rank_by_score")
    tie_break: np.ndarray = np.random.default_rng(seed).random((values.size,))
    return np.lexsort((tie_break, -values)).astype(np.int64)


def coreset_selection(
    pool_features: Any, labelled_features: Any | None, k: int, *, seed: int | np.random.Generator = 0
) -> np.ndarray:
    """k-centre greedy (Sener & Savarese 2018): repeatedly take the pool item farthest from everything chosen.

    Distances are Euclidean. The first pick is the item farthest from the labelled set or, with no labelled
    item, one drawn from ``seed``. Ties between equally far items are broken by ``seed``.

    Args:
        pool_features: one feature vector per unlabelled item.
        labelled_features: feature vectors of already labelled items (``None`` or zero rows: none).
        k: number of items to select.

    Returns:
        Pool indices in the order they were chosen.

    Shape:
        ``pool_features: (N, D)``, ``labelled_features: (M, D)`` -> ``(k,)`` int64.
    """
    pool = _as_array(pool_features, name="coreset_selection")
    if pool.ndim != 2:
        raise ValueError(f"coreset_selection: expected pool_features (N, D), got shape {pool.shape}")
    if not 1 <= k <= pool.shape[0]:
        raise ValueError(f"coreset_selection: expected 1 <= k <= {pool.shape[0]}, got {k}")
    _check_finite(pool.ravel(), name="coreset_selection pool_features")
    rng = np.random.default_rng(seed)
    tie_break: np.ndarray = rng.random((pool.shape[0],))
    min_dist = np.full(pool.shape[0], np.inf)
    labelled = None if labelled_features is None else _to_numpy_2d(labelled_features)
    if labelled is not None and labelled.size > 0:
        if labelled.ndim != 2 or labelled.shape[1] != pool.shape[1]:
            raise ValueError(f"coreset_selection: labelled_features must be (M, {pool.shape[1]}), got {labelled.shape}")
        _check_finite(labelled.ravel(), name="coreset_selection labelled_features")
        for row in labelled:
            min_dist = np.minimum(min_dist, np.linalg.norm(pool - row, axis=1))
        first = int(np.lexsort((tie_break, -min_dist))[0])
    else:
        first = int(rng.integers(pool.shape[0]))
    chosen = [first]
    min_dist = np.minimum(min_dist, np.linalg.norm(pool - pool[first], axis=1))
    min_dist[first] = -np.inf
    while len(chosen) < k:
        nxt = int(np.lexsort((tie_break, -min_dist))[0])
        chosen.append(nxt)
        min_dist = np.minimum(min_dist, np.linalg.norm(pool - pool[nxt], axis=1))
        min_dist[chosen] = -np.inf
    return np.asarray(chosen, dtype=np.int64)


def _to_numpy_2d(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def select_top_k_diverse(
    scores: Any,
    k: int,
    *,
    positions: Sequence[tuple[Hashable, int]] | None = None,
    min_gap: int = 2,
    features: Any | None = None,
    min_distance: float = 0.0,
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """Highest-scoring items, skipping any that nearly duplicates one already in the batch.

    Walks the items by decreasing score (seeded tie-break) and accepts an item unless it conflicts with an
    accepted one: same subject and frames closer than ``min_gap`` (``|f_i - f_j| < min_gap``; the default 2
    forbids neighbouring frames of a pullback), or features closer than ``min_distance`` (Euclidean).

    Args:
        scores: one score per item, higher first.
        k: batch size wanted.
        positions: ``(subject_id, frame_index)`` per item.
        min_gap: minimum frame distance between two selected frames of one subject.
        features: ``(N, D)`` feature vectors per item.
        min_distance: minimum feature distance between two selected items.
        seed: tie-break seed.

    Returns:
        At most ``k`` indices in selection order — fewer when the constraints leave fewer admissible items
        (the constraint is never relaxed).

    Shape:
        ``scores: (N,)`` -> ``(<= k,)`` int64.
    """
    order = rank_by_score(scores, seed=seed)
    n = order.size
    if k < 1:
        raise ValueError(f"select_top_k_diverse: k must be >= 1, got {k}")
    if positions is not None and len(positions) != n:
        raise ValueError(f"select_top_k_diverse: expected {n} positions, got {len(positions)}")
    feats = None
    if features is not None:
        feats = _to_numpy_2d(features)
        if feats.ndim != 2 or feats.shape[0] != n:
            raise ValueError(f"select_top_k_diverse: expected features ({n}, D), got shape {feats.shape}")
    chosen: list[int] = []
    taken_frames: dict[Hashable, list[int]] = {}
    for index in order.tolist():
        if positions is not None:
            subject, frame = positions[index]
            if any(abs(frame - other) < min_gap for other in taken_frames.get(subject, [])):
                continue
        if feats is not None and chosen and min_distance > 0:
            distances = np.linalg.norm(feats[chosen] - feats[index], axis=1)
            if (distances < min_distance).any():
                continue
        chosen.append(index)
        if positions is not None:
            taken_frames.setdefault(positions[index][0], []).append(int(positions[index][1]))
        if len(chosen) == k:
            break
    return np.asarray(chosen, dtype=np.int64)
