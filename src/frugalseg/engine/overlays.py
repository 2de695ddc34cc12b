"""Overlay PNGs: ground-truth and predicted class boundaries drawn over the image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage.segmentation import find_boundaries

from frugalseg.data.images import write_image_png

__all__ = ["overlay", "write_overlay"]

PREDICTION_COLOURS = np.array([[255, 64, 64], [255, 210, 0], [0, 200, 255], [255, 0, 255]], dtype=np.uint8)
TRUTH_COLOUR = np.array([64, 255, 64], dtype=np.uint8)


def overlay(image: np.ndarray, prediction: np.ndarray, truth: np.ndarray | None = None) -> np.ndarray:
    """RGB ``(H, W, 3)`` uint8: the image in grey, truth boundaries green, predicted boundaries per class colour."""
    grey = image if image.ndim == 2 else image.mean(axis=2)
    grey = grey.astype(np.float32)
    span = max(float(grey.max() - grey.min()), 1e-6)
    base = ((grey - grey.min()) / span * 255).astype(np.uint8)
    rgb = np.repeat(base[..., None], 3, axis=2) if image.ndim == 2 else image.astype(np.uint8).copy()
    if truth is not None:
        rgb[find_boundaries(truth, mode="inner") & (truth != 255)] = TRUTH_COLOUR
    for cls in range(1, int(prediction.max(initial=0)) + 1):
        rgb[find_boundaries(prediction == cls, mode="inner")] = PREDICTION_COLOURS[(cls - 1) % len(PREDICTION_COLOURS)]
    return rgb


def write_overlay(path: str | Path, image: np.ndarray, prediction: np.ndarray, truth: np.ndarray | None = None) -> Path:
    """Write :func:`overlay` as a PNG (atomically)."""
    return write_image_png(path, overlay(image, prediction, truth))
