"""Connected-component post-processing, chosen per class on validation cases (as nnU-Net does)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage

__all__ = ["clean_label_map"]


def clean_label_map(label: np.ndarray, *, classes: Iterable[int]) -> np.ndarray:
    """For each class in ``classes``: keep its largest connected component and fill background holes in it.

    Removed pixels become background (0); only background pixels are filled, so a class nested inside
    another (lumen inside vessel wall) is never overwritten.

    Shape:
        ``(H, W)`` integer label map -> same shape and dtype.
    """
    out = label.copy()
    for cls in classes:
        mask = out == cls
        components, count = ndimage.label(mask)
        if count > 1:
            sizes = np.bincount(components.ravel())[1:]
            out[mask & (components != 1 + int(np.argmax(sizes)))] = 0
        filled = ndimage.binary_fill_holes(out == cls)
        out[filled & (out == 0)] = cls
    return out
