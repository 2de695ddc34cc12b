"""Predicted error maps, image quality scores without ground truth, and their calibration."""

from frugalseg.quality.calibration import (
    average_precision,
    calibration_report,
    error_map_auroc_ap,
    rank_auroc,
)
from frugalseg.quality.error_targets import class_balance_weights, class_balanced_bce, error_target
from frugalseg.quality.scores import (
    image_quality_score,
    predicted_dice,
    predicted_error_fraction,
    quality_from_logits,
)
from frugalseg.quality.sqa_loss import SQALoss, SQALossTerms, sqa_loss

__all__ = [
    "SQALoss",
    "SQALossTerms",
    "average_precision",
    "calibration_report",
    "class_balance_weights",
    "class_balanced_bce",
    "error_map_auroc_ap",
    "error_target",
    "image_quality_score",
    "predicted_dice",
    "predicted_error_fraction",
    "quality_from_logits",
    "rank_auroc",
    "sqa_loss",
]
