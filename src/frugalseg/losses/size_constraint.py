"""Global size constraints on the predicted region of each class (Kervadec et al.).

The predicted size of class ``c`` in image ``b`` is ``s = sum_pixels softmax(logits)[b, c]``; given bounds
``lower <= s <= upper`` (pixels; e.g. from a box: ``0 <= s <= box area``, or fractions of it, see
:func:`frugalseg.losses.boxes.size_bounds_from_boxes`) the violations ``z_lower = (lower - s) / (H W)`` and
``z_upper = (s - upper) / (H W)`` (normalised by the image area) are penalised:

* ``"log_barrier"`` — the log-barrier extension (Kervadec et al., "Constrained deep networks: Lagrangian
  optimization via log-barrier extensions", 2019/2022)::

      psi_t(z) = -log(-z) / t                            if z <= -1 / t**2
                 t * z - log(1 / t**2) / t + 1 / t        otherwise

  continuous with a continuous derivative, finite everywhere, and pushing feasible sizes away from the
  bounds; ``t`` is raised during training (e.g. ``t *= 1.1`` each epoch) to tighten the barrier. Its value
  is not 0 on feasible sizes (and can be negative), only its minimiser matters.
* ``"quadratic"`` — the penalty of "Constrained-CNN losses for weakly supervised segmentation" (Kervadec
  et al., MedIA 2019): ``relu(z_lower)**2 + relu(z_upper)**2``, exactly 0 on feasible sizes.

Pass ``lower=None`` or ``upper=None`` for a one-sided constraint (a log barrier on a vacuous bound such as
``lower = 0`` still pushes the size away from it). Per image, the penalties are summed over the classes
where ``valid_mask`` is True.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from frugalseg.losses._checks import Reduction, check_logits, check_reduction, reduce

__all__ = [
    "Penalty",
    "SizeConstraintLoss",
    "log_barrier_extension",
    "quadratic_penalty",
    "size_constraint_loss",
]

Penalty = Literal["log_barrier", "quadratic"]
_PENALTIES = ("log_barrier", "quadratic")


def log_barrier_extension(z: torch.Tensor, *, t: float = 5.0) -> torch.Tensor:
    """Log-barrier extension ``psi_t(z)`` of the constraint ``z <= 0``, elementwise.

    Shape:
        any -> same.
    """
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"t={t}: expected a finite positive number")
    threshold = -1.0 / t**2
    inside = z <= threshold
    barrier = -torch.log(-torch.where(inside, z, torch.full_like(z, threshold))) / t
    linear = t * z - math.log(1.0 / t**2) / t + 1.0 / t
    return torch.where(inside, barrier, linear)


def quadratic_penalty(z: torch.Tensor) -> torch.Tensor:
    """``relu(z)**2``: zero where the constraint ``z <= 0`` holds, elementwise.

    Shape:
        any -> same.
    """
    return torch.relu(z).square()


def _check_bounds(bound: torch.Tensor | None, name: str, shape: tuple[int, int], logits: torch.Tensor) -> None:
    if bound is None:
        return
    if not isinstance(bound, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor of shape (B, C) = {shape}, got {type(bound).__name__}")
    if tuple(bound.shape) != shape:
        raise ValueError(f"{name} shape {tuple(bound.shape)}: expected (B, C) = {shape}")
    if bound.dtype == torch.bool or bound.is_complex():
        raise ValueError(f"{name} dtype {bound.dtype}: expected a real number tensor (pixels)")


def size_constraint_loss(
    logits: torch.Tensor,
    lower: torch.Tensor | None,
    upper: torch.Tensor | None,
    *,
    valid_mask: torch.Tensor | None = None,
    penalty: Penalty = "log_barrier",
    t: float = 5.0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Penalty on predicted class sizes outside ``[lower, upper]`` (see the module docstring).

    Args:
        logits: raw class scores.
        lower: lower size bounds in pixels, or ``None`` for none.
        upper: upper size bounds in pixels, or ``None`` for none.
        valid_mask: which ``(image, class)`` bounds are known; ``None`` means all.
        penalty: ``"log_barrier"`` or ``"quadratic"``.
        t: log-barrier parameter, ``> 0`` (unused by ``"quadratic"``).
        reduction: over images: ``"mean"``, ``"sum"``, or ``"none"`` for per-image losses.

    Shape:
        ``logits (B, C, H, W)``, ``lower``/``upper (B, C)`` float, ``valid_mask (B, C)`` bool
        -> scalar, or ``(B,)``.
    """
    batch, num_classes, height, width = check_logits(logits, min_classes=1)
    check_reduction(reduction)
    if penalty not in _PENALTIES:
        raise ValueError(f"penalty={penalty!r}: expected one of {', '.join(map(repr, _PENALTIES))}")
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"t={t}: expected a finite positive number")
    if lower is None and upper is None:
        raise ValueError("lower=None and upper=None: expected at least one size bound")
    shape = (batch, num_classes)
    _check_bounds(lower, "lower", shape, logits)
    _check_bounds(upper, "upper", shape, logits)
    if valid_mask is None:
        valid = torch.ones(shape, dtype=torch.bool, device=logits.device)
    elif not isinstance(valid_mask, torch.Tensor) or tuple(valid_mask.shape) != shape:
        got = tuple(valid_mask.shape) if isinstance(valid_mask, torch.Tensor) else type(valid_mask).__name__
        raise ValueError(f"valid_mask shape {got}: expected (B, C) = {shape}")
    elif valid_mask.dtype != torch.bool:
        raise ValueError(f"valid_mask dtype {valid_mask.dtype}: expected torch.bool")
    else:
        valid = valid_mask.to(logits.device)
    if (
        lower is not None
        and upper is not None
        and bool((valid & (lower.to(valid.device) > upper.to(valid.device))).any())
    ):
        raise ValueError("lower > upper for some valid (image, class): expected lower <= upper")

    area = float(height * width)
    size = torch.softmax(logits, dim=1).sum(dim=(2, 3))
    violations = []
    if lower is not None:
        violations.append((lower.to(logits) - size) / area)
    if upper is not None:
        violations.append((size - upper.to(logits)) / area)
    total = logits.new_zeros(shape)
    for z in violations:
        total = total + (log_barrier_extension(z, t=t) if penalty == "log_barrier" else quadratic_penalty(z))
    per_image = (total * valid.to(logits.dtype)).sum(dim=1)
    return reduce(per_image, reduction)


class SizeConstraintLoss(nn.Module):
    """Module form of :func:`size_constraint_loss`; stores ``penalty``, ``t`` and ``reduction``.

    ``t`` is a plain attribute so a training loop can raise it between epochs.
    """

    def __init__(self, *, penalty: Penalty = "log_barrier", t: float = 5.0, reduction: Reduction = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        if penalty not in _PENALTIES:
            raise ValueError(f"penalty={penalty!r}: expected one of {', '.join(map(repr, _PENALTIES))}")
        self.penalty: Penalty = penalty
        self.t = t
        self.reduction: Reduction = reduction

    def forward(
        self,
        logits: torch.Tensor,
        lower: torch.Tensor | None,
        upper: torch.Tensor | None,
        valid_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return size_constraint_loss(
            logits,
            lower,
            upper,
            valid_mask=valid_mask,
            penalty=self.penalty,
            t=self.t,
            reduction=self.reduction,
        )
