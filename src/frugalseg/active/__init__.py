"""Active learning: pure scoring strategies, a loop handed callables (never a model), a simulated expert."""

from frugalseg.active.correction import CorrectionEffort, correction_cost, scratch_seconds
from frugalseg.active.expert import ModelPrediction, SimulatedExpert
from frugalseg.active.loop import LOOP_STRATEGIES, ActiveLearningConfig, ALResult, PoolScores, run_active_learning
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
    "LOOP_STRATEGIES",
    "STRATEGIES",
    "ALResult",
    "ActiveLearningConfig",
    "CorrectionEffort",
    "ModelPrediction",
    "PoolScores",
    "SimulatedExpert",
    "bald_scores",
    "coreset_selection",
    "correction_cost",
    "entropy_scores",
    "evenly_spaced_selection",
    "predictive_entropy_scores",
    "random_scores",
    "rank_by_score",
    "run_active_learning",
    "scratch_seconds",
    "select_top_k_diverse",
    "sqa_scores",
]
