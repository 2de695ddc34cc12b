"""The optimisation pieces every trainer shares: the one-cycle schedule and one guarded optimiser step."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from frugalseg.errors import InputError

__all__ = ["one_cycle", "optimiser_step"]


def one_cycle(total_steps: int, warmup_fraction: float = 0.05) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to 1% of the peak learning rate (a ``LambdaLR`` factor)."""
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def optimiser_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    what: str,
    step: int,
) -> float:
    """Back-propagate ``loss``, step the optimiser and the schedule; return the loss as a float.

    Raises:
        InputError: a non-finite loss (``what`` names the training in the message, ``step`` the step).
    """
    if not torch.isfinite(loss):
        raise InputError(f"{what} diverged: non-finite loss at step {step}; lower the learning rate")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return float(loss.detach())
