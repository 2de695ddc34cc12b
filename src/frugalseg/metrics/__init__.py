"""Segmentation metrics with stated units and empty-mask rules.

* :mod:`~frugalseg.metrics.overlap`: Dice, Jaccard (numpy masks) and a batched Dice on label maps (torch).
* :mod:`~frugalseg.metrics.distance`: HD95, ASSD and Hausdorff distance in mm, MONAI's definitions.
* :mod:`~frugalseg.metrics.ivus`: the IVUS challenge's JCC, PAD and HD for lumen and vessel.
* :mod:`~frugalseg.metrics.summary`: per-case metrics by class and their summary over cases.
"""

from frugalseg.metrics.distance import (
    assd_mm,
    boundary,
    distance_metrics_mm,
    hausdorff_mm,
    hd95_mm,
    surface_distances_mm,
)
from frugalseg.metrics.ivus import ivus_measures, percentage_area_difference
from frugalseg.metrics.overlap import batch_dice, dice_score, foreground_dice, jaccard_score
from frugalseg.metrics.summary import METRIC_NAMES, case_metrics, summarise

__all__ = [
    "METRIC_NAMES",
    "assd_mm",
    "batch_dice",
    "boundary",
    "case_metrics",
    "dice_score",
    "distance_metrics_mm",
    "foreground_dice",
    "hausdorff_mm",
    "hd95_mm",
    "ivus_measures",
    "jaccard_score",
    "percentage_area_difference",
    "summarise",
    "surface_distances_mm",
]
