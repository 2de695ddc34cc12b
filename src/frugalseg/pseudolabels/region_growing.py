"""Region growing from clicks: the connected region of pixels whose intensity is close to the seed's.

For each click the image (rescaled to ``[0, 1]`` by :func:`~frugalseg.pseudolabels.random_walker.unit_range`,
then Gaussian-smoothed) is compared with the mean intensity of a small window around the click; pixels within
a tolerance that are 4-connected to the click form its region. The tolerance is estimated at the seed,
``tolerance_scale`` times the standard deviation of the unsmoothed intensities in the window (at least
``min_tolerance``), unless given. A region larger than ``max_fraction`` of the image has leaked through a
weak edge: its tolerance is shrunk (by 0.7, up to 12 times) until it fits, else only the click is kept.

Negative clicks (class 0) grow background regions the same way. A pixel claimed by regions of two different
classes is left ``IGNORE``. With ``background_margin``, pixels farther than that many pixels from every
grown foreground region are labelled background as well (objects are compact around their clicks).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage

from frugalseg.annotations.kinds import Point, Points, point_pixel
from frugalseg.data.case import IGNORE
from frugalseg.pseudolabels.random_walker import unit_range

__all__ = ["grow_region", "region_growing"]

_FOUR = ndimage.generate_binary_structure(2, 1)


def _smoothed(image: np.ndarray, smoothing: float) -> np.ndarray:
    data = unit_range(image)
    data = data[..., None] if data.ndim == 2 else data
    if smoothing > 0:
        data = np.stack([ndimage.gaussian_filter(data[..., k], smoothing) for k in range(data.shape[-1])], axis=-1)
    return data


def grow_region(
    smoothed: np.ndarray,
    raw: np.ndarray,
    seed: tuple[int, int],
    *,
    tolerance: float | None = None,
    tolerance_scale: float = 2.5,
    min_tolerance: float = 0.02,
    window: int = 5,
    max_fraction: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """The region grown from one seed pixel.

    Args:
        smoothed: the smoothed unit-range image, ``(H, W, C)``.
        raw: the unsmoothed unit-range image, ``(H, W, C)`` (for the tolerance estimate).
        seed: ``(row, col)`` inside the image.
        tolerance: intensity tolerance in unit-range units; ``None`` estimates it at the seed.
        tolerance_scale: multiple of the seed window's standard deviation used as tolerance.
        min_tolerance: lower bound of the estimated tolerance.
        window: odd side of the seed window in pixels.
        max_fraction: largest allowed region, as a fraction of the image.

    Returns:
        ``(region, distance)``: ``bool`` ``(H, W)`` region and ``float32`` ``(H, W)`` intensity distance to the
        seed's mean divided by the tolerance used (``<= 1`` inside the region).
    """
    height, width = smoothed.shape[:2]
    row, col = seed
    if not (0 <= row < height and 0 <= col < width):
        raise ValueError(f"seed (row={row}, col={col}) lies outside the {height}x{width} image")
    if window < 1 or window % 2 == 0 or not 0 < max_fraction <= 1:
        raise ValueError(f"window={window}, max_fraction={max_fraction}: expected an odd window and 0 < fraction <= 1")
    half = window // 2
    rows = slice(max(0, row - half), min(height, row + half + 1))
    cols = slice(max(0, col - half), min(width, col + half + 1))
    centre = smoothed[rows, cols].reshape(-1, smoothed.shape[-1]).mean(axis=0)
    if tolerance is None:
        spread = float(np.sqrt(raw[rows, cols].reshape(-1, raw.shape[-1]).var(axis=0).sum()))
        tolerance = max(min_tolerance, tolerance_scale * spread)
    if not tolerance > 0:
        raise ValueError(f"tolerance={tolerance}: expected a positive number")
    distance = np.sqrt(((smoothed - centre) ** 2).sum(axis=-1))
    limit = max_fraction * height * width
    region = np.zeros((height, width), dtype=bool)
    for _ in range(12):
        components, _ = ndimage.label(distance <= tolerance, structure=_FOUR)
        index = components[row, col]
        region = components == index if index > 0 else np.zeros_like(region)
        if region.sum() <= limit:
            break
        tolerance *= 0.7
    else:  # no edge stops it: only the click itself is known
        region = np.zeros_like(region)
    region[row, col] = True
    return region, (distance / tolerance).astype(np.float32)


def region_growing(
    image: np.ndarray,
    points: Points | Iterable[Point],
    *,
    num_classes: int | None = None,
    tolerance: float | None = None,
    tolerance_scale: float = 2.5,
    min_tolerance: float = 0.02,
    window: int = 5,
    smoothing: float = 1.0,
    max_fraction: float = 0.5,
    background_margin: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo-labels grown from positive and negative clicks (see the module docstring).

    Args:
        image: grey ``(H, W)`` or colour ``(H, W, C)`` image.
        points: clicks ``(row, col, label)``, ``label 0`` for background.
        num_classes: classes; ``None`` means ``max label + 1``. Labels at or above it raise ``ValueError``.
        tolerance: fixed intensity tolerance (unit range); ``None`` estimates it per click.
        tolerance_scale: multiple of the seed window's standard deviation used as tolerance.
        min_tolerance: lower bound of estimated tolerances.
        window: odd side of the seed window.
        smoothing: Gaussian sigma in pixels applied before growing (0: none).
        max_fraction: largest region per click, as a fraction of the image.
        background_margin: label background beyond this distance (pixels) from every grown foreground region;
            ``None`` labels only the regions grown from negative clicks.

    Returns:
        ``(label, confidence)``: ``uint8`` class map (``IGNORE`` where unknown or contested) and ``float32``
        confidence in ``[0, 1]``: ``1 - distance / tolerance`` in grown regions, 1 at clicks and in the
        far background, 0 where unknown.

    Shape:
        ``image (H, W[, C])`` -> ``(H, W)``, ``(H, W)``.
    """
    items = points.points if isinstance(points, Points) else tuple(points)
    shape = np.shape(image)[:2]
    classes = max([p.label for p in items], default=0) + 1 if num_classes is None else int(num_classes)
    label = np.full(shape, IGNORE, dtype=np.uint8)
    confidence = np.zeros(shape, dtype=np.float32)
    if not items:
        return label, confidence
    raw = unit_range(image)
    raw = raw[..., None] if raw.ndim == 2 else raw
    smoothed = _smoothed(image, smoothing)
    claims = np.zeros((classes, *shape), dtype=bool)
    score = np.zeros((classes, *shape), dtype=np.float32)
    seeds = []
    for point in items:
        if not 0 <= point.label < classes:
            raise ValueError(f"point label {point.label}: expected a class below num_classes={classes}")
        pixel = point_pixel(point)
        region, distance = grow_region(
            smoothed,
            raw,
            pixel,
            tolerance=tolerance,
            tolerance_scale=tolerance_scale,
            min_tolerance=min_tolerance,
            window=window,
            max_fraction=max_fraction,
        )
        claims[point.label] |= region
        score[point.label] = np.maximum(score[point.label], np.where(region, np.clip(1 - distance, 0, 1), 0))
        seeds.append((pixel, point.label))
    count = claims.sum(axis=0)
    single = count == 1
    owner = claims.argmax(axis=0)
    label[single] = owner[single]
    confidence[single] = np.take_along_axis(score, owner[None], axis=0)[0][single]
    if background_margin is not None:
        foreground = claims[1:].any(axis=0)
        if foreground.any():
            far = ndimage.distance_transform_edt(~foreground) > background_margin
            free = far & (count == 0)
            label[free] = 0
            confidence[free] = 1.0
    for (row, col), c in seeds:
        label[row, col] = c
        confidence[row, col] = 1.0
    return label, confidence
