"""Flip agreement: a second, independent witness of where a segmentation is wrong.

The error branch judges one view of an image. The same network run on the image flipped left-right, up-down
and both (the flips its training augmentation applies), with the outputs flipped back, gives three more
views. A pixel whose label changes between views is unstable, and unstable pixels are often wrong where the
error branch is confident, e.g. along an outline bent into the wrong shape. The two are joined as
independent sources of error::

    u_i  = fraction of the views whose argmax differs from the rated label y_i
    e'_i = 1 - (1 - mean_v e_vi) (1 - u_i)

and ``e'``, with the views' mean probabilities, goes into :func:`~frugalseg.quality.scores.predicted_dice`.
The rated label map stays the unflipped view's prediction: this changes the quality estimate, not the mask.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["FLIPS", "flip_error_map", "flipped_views"]

FLIPS: tuple[tuple[int, ...], ...] = ((-1,), (-2,), (-2, -1))
"""Flipped views after the plain one: the dims flipped (left-right, up-down, both)."""

View = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``x -> (probabilities (B, C, H, W), error probabilities (B, H, W))`` of one network pass."""


def flipped_views(view: View, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's outputs on each of :data:`FLIPS`, flipped back onto the original pixel grid.

    Shape:
        ``x: (B, C_in, H, W)`` -> probabilities ``(V, B, C, H, W)`` and error probabilities ``(V, B, H, W)``,
        ``V = len(FLIPS)``.
    """
    probs, errors = [], []
    for dims in FLIPS:
        p, e = view(x.flip(dims))
        probs.append(p.flip(dims))
        errors.append(e.flip(dims))
    return torch.stack(probs), torch.stack(errors)


def flip_error_map(
    pred_labels: torch.Tensor, view_probs: torch.Tensor, view_errors: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Error map of ``pred_labels`` from every view's error map and label (see the module docstring).

    Args:
        pred_labels: the rated prediction (the plain view's argmax).
        view_probs: all views' probabilities, the plain one included.
        view_errors: all views' error probabilities, in the same order.

    Returns:
        ``(e', mean probabilities)``.

    Shape:
        ``pred_labels: (B, H, W)``, ``view_probs: (V, B, C, H, W)``, ``view_errors: (V, B, H, W)`` ->
        ``(B, H, W)`` and ``(B, C, H, W)``.
    """
    if view_probs.ndim != 5 or view_errors.shape != (view_probs.shape[0], *pred_labels.shape):
        raise ValueError(
            f"views {tuple(view_probs.shape)} / {tuple(view_errors.shape)}"
            f" do not match labels {tuple(pred_labels.shape)}"
        )
    unstable = (view_probs.argmax(dim=2) != pred_labels[None]).float().mean(dim=0)
    mean_error = view_errors.float().clamp(0.0, 1.0).mean(dim=0)
    return 1.0 - (1.0 - mean_error) * (1.0 - unstable), view_probs.float().mean(dim=0)
