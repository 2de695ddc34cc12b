"""Numerical helpers shared by the losses (private to :mod:`frugalseg.losses`)."""

from __future__ import annotations

import math

import torch

__all__ = ["log1mexp"]


def log1mexp(log_probs: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(x))`` for ``x = log p <= 0``, accurate near both ends.

    ``x`` is kept at most ``-eps`` of its dtype, so the result is finite (at most ``-log(eps)`` in magnitude).

    Shape:
        any -> same.
    """
    x = log_probs.clamp_max(-torch.finfo(log_probs.dtype).eps)
    return torch.where(x > -math.log(2.0), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))
