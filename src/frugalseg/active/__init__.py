"""Active learning: strategies as pure scoring functions (the loop is handed callables, never a model)."""

from frugalseg.active.strategies import (
    STRATEGIES,
    bald_scores,
    coreset_selection,
    entropy_scores,
    evenly_spaced_selection,
    predictive_entropy_scores,
    random_scores,
    rank_by_score,
    select_top_k_diverse,
    sqa_scores,
)

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
