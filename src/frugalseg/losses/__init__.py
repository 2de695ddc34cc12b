"""Losses for full and weak supervision: one loss per module, each a pure function plus a thin ``nn.Module``.

Conventions shared by every loss:

* ``logits``: ``(B, C, H, W)`` float raw class scores, class 0 background; probabilities are their softmax.
* ``target``: ``(B, H, W)`` int64 label map, ``IGNORE`` (255, :data:`frugalseg.data.case.IGNORE`) where
  unlabelled.
* weak annotations carry an explicit bool ``valid_mask`` (``(B, H, W)`` for pixels, ``(B, C)`` for
  per-class quantities) saying where they are known; ``None`` means everywhere.
* boxes: one list per image of :class:`frugalseg.data.case.Box` (pixel ``xmin, ymin, xmax, ymax`` with the
  maximum exclusive, and ``label``); see :mod:`frugalseg.losses.boxes`.
* ``reduction`` in ``{"mean", "sum", "none"}``; device and dtype follow ``logits``; wrong shapes, dtypes or
  options raise ``ValueError`` naming the bad value.
"""

from frugalseg.losses.box_tightness import BoxTightnessLoss, box_tightness_loss, log_smooth_max
from frugalseg.losses.boxes import BoxLike, box_mask, size_bounds_from_boxes
from frugalseg.losses.crf_loss import CRFLoss, crf_loss
from frugalseg.losses.dice_ce import DiceCELoss, DiceLoss, dice_ce_loss, dice_loss
from frugalseg.losses.entropy import EntropyLoss, entropy_loss
from frugalseg.losses.partial_ce import PartialCrossEntropy, partial_cross_entropy
from frugalseg.losses.partial_labels import (
    ExclusionLoss,
    MarginalCrossEntropy,
    MarginalExclusionLoss,
    exclusion_loss,
    marginal_cross_entropy,
    marginal_exclusion_loss,
)
from frugalseg.losses.point_constraints import PointLoss, point_loss
from frugalseg.losses.size_constraint import (
    SizeConstraintLoss,
    log_barrier_extension,
    quadratic_penalty,
    size_constraint_loss,
)
from frugalseg.losses.total_variation import TotalVariationLoss, total_variation_loss

__all__ = [
    "BoxLike",
    "BoxTightnessLoss",
    "CRFLoss",
    "DiceCELoss",
    "DiceLoss",
    "EntropyLoss",
    "ExclusionLoss",
    "MarginalCrossEntropy",
    "MarginalExclusionLoss",
    "PartialCrossEntropy",
    "PointLoss",
    "SizeConstraintLoss",
    "TotalVariationLoss",
    "box_mask",
    "box_tightness_loss",
    "crf_loss",
    "dice_ce_loss",
    "dice_loss",
    "entropy_loss",
    "exclusion_loss",
    "log_barrier_extension",
    "log_smooth_max",
    "marginal_cross_entropy",
    "marginal_exclusion_loss",
    "partial_cross_entropy",
    "point_loss",
    "quadratic_penalty",
    "size_bounds_from_boxes",
    "size_constraint_loss",
    "total_variation_loss",
]
