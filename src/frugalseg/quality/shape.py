"""Shape agreement: a witness of error for objects whose true outline is an ellipse by definition.

HC18 annotates every fetal head as an ellipse. When the truth ``T`` is an ellipse, a prediction ``P`` matches it
no better than it matches the ellipse nearest to it, ``Dice(P, T) <= max_E Dice(P, E)``. The ellipse fitted to
``P``'s outline by least squares (:func:`~frugalseg.foundation.shape_prior.fit_ellipses`) stands in for that
nearest one. It is pulled toward a bend, so its agreement ``a = Dice(P, E_fit)`` falls faster than the bound:
it measures how far from any ellipse the outline is, rather than bounding the Dice. It sees what the error
branch tends to miss, an outline bent into the wrong shape with a sharp edge (a bulge, a dent, a stray blob);
a wrong size keeps the shape and is left to the error map. The two are joined as independent::

    Dice'_c = Dice_c * a_c

for each foreground class ``c``. A class absent from the prediction keeps its estimate (``a_c = 1``); a mask
that no ellipse fits (too few outline points, or an ellipse of twice or half its area) has ``a_c = 0``.
"""

from __future__ import annotations

import numpy as np

from frugalseg.foundation.shape_prior import fit_ellipses

__all__ = ["OUTLINE_TOLERANCE", "shape_agreement"]

OUTLINE_TOLERANCE = 1.0
"""Pixels from the image border within which outline points are left out of the fit (the frame cuts there)."""


def shape_agreement(pred_labels: np.ndarray, *, num_classes: int) -> np.ndarray:
    """Dice of each foreground class's predicted mask and the ellipse fitted to its outline (1 where absent).

    Shape:
        ``pred_labels: (H, W)`` int -> ``(C - 1,)``.
    """
    if pred_labels.ndim != 2:
        raise ValueError(f"expected one (H, W) label map, got shape {pred_labels.shape}")
    masks = np.stack([pred_labels == c for c in range(1, num_classes)])
    _, agreement = fit_ellipses(masks, None, tolerance=OUTLINE_TOLERANCE)
    return np.where(masks.any(axis=(1, 2)), agreement, 1.0)
