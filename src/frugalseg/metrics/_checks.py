"""Input checks shared by the metric modules (private)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["as_label_map", "as_mask", "check_pair", "check_spacing"]


def as_mask(mask: np.ndarray, name: str) -> np.ndarray:
    """Return ``mask`` as a 2D boolean array (non-zero is foreground); raise ``ValueError`` if not 2D."""
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2D (H, W) mask, got shape {array.shape}")
    return array if array.dtype == np.bool_ else array != 0


def as_label_map(label: np.ndarray, name: str) -> np.ndarray:
    """Return ``label`` as a 2D integer array; raise ``ValueError`` if it is not a 2D integer map."""
    array = np.asarray(label)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2D (H, W) label map, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        raise ValueError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    return array


def check_pair(pred: np.ndarray, target: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``pred`` and ``target`` have the same shape."""
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {pred.shape} and {target.shape}")


def check_spacing(spacing: Sequence[float]) -> tuple[float, float]:
    """Return ``spacing`` as ``(row_mm, col_mm)``; raise ``ValueError`` unless two finite positive numbers."""
    values = tuple(float(s) for s in spacing)
    if len(values) != 2 or not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"spacing must be two positive finite numbers (row_mm, col_mm), got {tuple(spacing)}")
    return values[0], values[1]
