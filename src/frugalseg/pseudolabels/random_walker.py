"""Random-walker pseudo-labels from scribbles, points or boxes (Grady 2006, through scikit-image).

Grady ("Random walks for image segmentation", IEEE TPAMI 2006) labels each unseeded pixel with the class
whose seeds a random walker starting there reaches first, edges weighted by ``exp(-beta |I_i - I_j|**2)``;
the arrival probabilities are the solution of a sparse linear system
(:func:`skimage.segmentation.random_walker`). Here the seeds are a label map: the class of each seeded pixel
(scribbles, clicks) and ``IGNORE`` elsewhere; the result is a dense label map plus a per-pixel confidence,
the margin between the two most probable classes (seeds have confidence 1).

The image is rescaled to ``[0, 1]`` between its 1st and 99th percentiles first (:func:`unit_range`):
scikit-image divides ``beta`` by ten times the image's standard deviation but squares the gradients, so the
result depends on the intensity scale; fixing the scale makes ``beta`` mean the same on every image.

:func:`box_random_walker_labels` is the box counterpart of GrabCut without OpenCV: seeds of background
outside every box and of each box's class in an ellipse at the box's centre, then the random walker, then
every class kept inside its own boxes.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from skimage.draw import ellipse
from skimage.segmentation import random_walker

from frugalseg.data.case import IGNORE, Box
from frugalseg.metrics._checks import check_spacing

__all__ = [
    "box_random_walker_labels",
    "box_seeds",
    "probability_margin",
    "random_walker_labels",
    "random_walker_probabilities",
    "unit_range",
]


def unit_range(image: np.ndarray, *, percentiles: tuple[float, float] = (1.0, 99.0)) -> np.ndarray:
    """``float64`` copy of ``image`` mapped linearly from its ``percentiles`` to ``[0, 1]`` and clipped.

    All channels share one range. A constant image becomes zeros.

    Shape:
        ``(H, W)`` or ``(H, W, C)`` -> same.
    """
    array = np.asarray(image, dtype=np.float64)
    if array.ndim not in (2, 3):
        raise ValueError(f"image shape {array.shape}: expected (H, W) or (H, W, C)")
    if not np.isfinite(array).all():
        raise ValueError("image contains NaN or infinite values")
    low, high = np.percentile(array, percentiles)
    if high <= low:
        return np.zeros_like(array)
    return np.clip((array - low) / (high - low), 0.0, 1.0)


def probability_margin(probabilities: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 class probability per pixel (1 for a single class).

    Shape:
        ``(C, H, W)`` -> ``(H, W)`` float32.
    """
    probs = np.asarray(probabilities, dtype=np.float32)
    if probs.ndim != 3:
        raise ValueError(f"probabilities shape {probs.shape}: expected (C, H, W)")
    if probs.shape[0] == 1:
        return np.ones(probs.shape[1:], dtype=np.float32)
    top2 = np.partition(probs, probs.shape[0] - 2, axis=0)[-2:]
    return (top2[1] - top2[0]).astype(np.float32)


def _check_seeds(image: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    seeds = np.asarray(seeds)
    if seeds.ndim != 2 or seeds.dtype == np.bool_ or not np.issubdtype(seeds.dtype, np.integer):
        raise ValueError(f"seeds: expected a 2D integer (H, W) label map, got {seeds.dtype} {seeds.shape}")
    if tuple(seeds.shape) != tuple(np.shape(image)[:2]):
        raise ValueError(f"seeds shape {seeds.shape}: expected the image's (H, W) = {np.shape(image)[:2]}")
    if seeds.size and (int(seeds.min()) < 0 or int(seeds.max()) > IGNORE):
        raise ValueError(f"seeds values {int(seeds.min())}..{int(seeds.max())}: expected classes or IGNORE")
    return seeds.astype(np.int64)


def random_walker_probabilities(
    image: np.ndarray,
    seeds: np.ndarray,
    *,
    num_classes: int | None = None,
    beta: float = 130.0,
    spacing: Sequence[float] | None = None,
    tol: float = 1e-3,
) -> np.ndarray:
    """Probability that a random walker from each pixel first reaches a seed of each class.

    Args:
        image: grey ``(H, W)`` or colour ``(H, W, C)`` image, any intensity scale (see :func:`unit_range`).
        seeds: class of each seeded pixel, ``IGNORE`` (255) elsewhere.
        num_classes: output classes; ``None`` means ``max seed + 1``. Classes without seeds get 0.
        beta: edge sharpness (larger: diffusion stops more at intensity edges).
        spacing: ``(row_mm, col_mm)`` pixel size, for anisotropic pixels; ``None`` means square pixels. Only
            the ratio counts (it is scaled so the finer axis is 1): the solver divides intensity steps by the
            spacing, so absolute sizes would make ``beta`` mean a different edge strength at every resolution.
        tol: tolerance of the conjugate-gradient solver (Jacobi preconditioned, no pyamg needed).

    Returns:
        ``float32`` probabilities summing to 1 over the seeded classes; all zeros when there is no seed.

    Shape:
        ``image (H, W[, C])``, ``seeds (H, W)`` -> ``(num_classes, H, W)``.
    """
    seeds = _check_seeds(image, seeds)
    seeded = seeds != IGNORE
    largest = int(seeds[seeded].max(initial=-1))
    classes = largest + 1 if num_classes is None else int(num_classes)
    if largest >= classes:
        raise ValueError(f"seed class {largest}: expected classes below num_classes={classes}")
    if not beta > 0:
        raise ValueError(f"beta={beta}: expected a positive number")
    out = np.zeros((max(classes, 1), *seeds.shape), dtype=np.float32)
    present = np.unique(seeds[seeded])
    if present.size == 0:
        return out
    if present.size == 1 or seeded.all():
        for c in present:
            out[c] = seeds == c
        if present.size == 1:
            out[present[0]] = 1.0
        return out
    data = unit_range(image)
    markers = np.where(seeded, seeds + 1, 0)  # random_walker: 0 = unlabelled, classes from 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "probability range outside [0, 1]" within tolerance, isolated pixels
        probabilities = random_walker(
            data,
            markers,
            beta=beta,
            mode="cg_j",
            tol=tol,
            return_full_prob=True,
            spacing=_relative(spacing),
            channel_axis=-1 if data.ndim == 3 else None,
        )
    for row, c in zip(probabilities, present, strict=True):  # rows follow the sorted seed values
        out[c] = np.clip(row, 0.0, 1.0)
    return out / np.maximum(out.sum(axis=0, keepdims=True), 1e-12)  # the solver's tolerance, normalised away


def _relative(spacing: Sequence[float] | None) -> tuple[float, float] | None:
    """``(row, col)`` pixel spacing scaled so its finer axis is 1 (``None`` stays ``None``)."""
    if spacing is None:
        return None
    row, col = check_spacing(spacing)
    finest = min(row, col)
    return row / finest, col / finest


def random_walker_labels(
    image: np.ndarray,
    seeds: np.ndarray,
    *,
    num_classes: int | None = None,
    beta: float = 130.0,
    min_margin: float = 0.0,
    spacing: Sequence[float] | None = None,
    tol: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray]:
    """Dense pseudo-labels from sparse seeds (scribbles, clicks) by the random walker.

    Args:
        image: grey ``(H, W)`` or colour ``(H, W, C)`` image.
        seeds: class of each seeded pixel, ``IGNORE`` elsewhere (e.g. ``Scribbles.label``).
        num_classes: classes; ``None`` means ``max seed + 1``.
        beta: edge sharpness of :func:`random_walker_probabilities`.
        min_margin: pixels whose probability margin is below this become ``IGNORE`` (seeds never do).
        spacing: ``(row_mm, col_mm)``, or ``None``.
        tol: solver tolerance.

    Returns:
        ``(label, confidence)``: ``uint8`` class map (``IGNORE`` where dropped or when there is no seed) and
        ``float32`` probability margin in ``[0, 1]`` (1 on seeds, 0 without seeds).

    Shape:
        ``image (H, W[, C])``, ``seeds (H, W)`` -> ``(H, W)``, ``(H, W)``.
    """
    probabilities = random_walker_probabilities(
        image, seeds, num_classes=num_classes, beta=beta, spacing=spacing, tol=tol
    )
    seeds = np.asarray(seeds)
    if not (probabilities.sum(axis=0) > 0).any():
        return np.full(seeds.shape, IGNORE, dtype=np.uint8), np.zeros(seeds.shape, dtype=np.float32)
    label = probabilities.argmax(axis=0).astype(np.uint8)
    confidence = probability_margin(probabilities)
    seeded = seeds != IGNORE
    label[seeded] = seeds[seeded]
    confidence[seeded] = 1.0
    label[confidence < min_margin] = IGNORE
    return label, confidence


def _contains(outer: Box, inner: Box) -> bool:
    return (
        outer is not inner
        and outer.xmin <= inner.xmin
        and outer.ymin <= inner.ymin
        and inner.xmax <= outer.xmax
        and inner.ymax <= outer.ymax
    )


def _span(box: Box, height: int, width: int, margin: int) -> tuple[slice, slice]:
    rows = slice(max(0, int(np.floor(box.ymin)) - margin), min(height, int(np.ceil(box.ymax)) + margin))
    cols = slice(max(0, int(np.floor(box.xmin)) - margin), min(width, int(np.ceil(box.xmax)) + margin))
    return rows, cols


def box_seeds(
    shape: Sequence[int],
    boxes: Sequence[Box],
    *,
    core: float = 0.3,
    outer_core: float = 0.85,
    margin: int = 2,
) -> np.ndarray:
    """Seeds implied by boxes: background outside every box, each box's class inside it.

    Background seeds lie at least ``margin`` pixels outside every box. A box of class ``c`` seeds ``c`` in the
    ellipse inscribed in the box and shrunk by ``core`` about its centre (the object is assumed to cover its
    box's centre). A box that contains other boxes (a vessel around its lumen) instead seeds ``c`` in its
    inscribed ellipse shrunk by ``outer_core`` minus the boxes it contains widened by ``margin``: the ring
    between them (no seed when the ring is empty). Boxes are drawn largest first, so nested boxes' seeds win.

    Args:
        shape: ``(H, W)`` of the image.
        boxes: :class:`~frugalseg.data.case.Box` items in pixel ``xyxy`` (max exclusive).
        core: fraction of the half-sides kept for the seed ellipse of a box, in ``(0, 1]``.
        outer_core: the same for a box containing other boxes.
        margin: pixels between a box and the background seeds, and around nested boxes.

    Returns:
        ``uint8`` ``(H, W)`` seed map, ``IGNORE`` where unseeded.
    """
    if not (0.0 < core <= 1.0 and 0.0 < outer_core <= 1.0) or margin < 0:
        raise ValueError(f"core={core}, outer_core={outer_core}, margin={margin}: expected (0, 1], (0, 1], >= 0")
    height, width = int(shape[0]), int(shape[1])
    seeds = np.zeros((height, width), dtype=np.uint8)
    ordered = sorted(boxes, key=lambda b: -(b.xmax - b.xmin) * (b.ymax - b.ymin))
    for box in ordered:
        seeds[_span(box, height, width, margin)] = IGNORE
    for box in ordered:
        nested = [other for other in ordered if _contains(box, other)]
        scale = outer_core if nested else core
        centre_row, centre_col = (box.ymin + box.ymax) / 2 - 0.5, (box.xmin + box.xmax) / 2 - 0.5
        radius_row = max(0.5, scale * (box.ymax - box.ymin) / 2)
        radius_col = max(0.5, scale * (box.xmax - box.xmin) / 2)
        region = np.zeros((height, width), dtype=bool)
        rows, cols = ellipse(centre_row, centre_col, radius_row, radius_col, shape=(height, width))
        region[rows, cols] = True
        for other in nested:
            region[_span(other, height, width, margin)] = False
        if not region.any() and not nested:  # a box smaller than a pixel of seeds: its centre
            row, col = round(centre_row), round(centre_col)
            if 0 <= row < height and 0 <= col < width:
                region[row, col] = True
        seeds[region] = int(box.label)
    return seeds


def box_random_walker_labels(
    image: np.ndarray,
    boxes: Sequence[Box],
    *,
    num_classes: int | None = None,
    core: float = 0.3,
    outer_core: float = 0.85,
    margin: int = 2,
    beta: float = 130.0,
    min_margin: float = 0.0,
    spacing: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """GrabCut-like pseudo-labels from boxes: :func:`box_seeds`, the random walker, classes kept in their boxes.

    A pixel given class ``c`` outside every box of class ``c`` becomes background (confidence kept).

    Returns:
        ``(label, confidence)`` as :func:`random_walker_labels`.

    Shape:
        ``image (H, W[, C])`` -> ``(H, W)``, ``(H, W)``.
    """
    shape = np.shape(image)[:2]
    seeds = box_seeds(shape, boxes, core=core, outer_core=outer_core, margin=margin)
    classes = num_classes
    if classes is None:
        classes = max([int(b.label) for b in boxes], default=0) + 1
    label, confidence = random_walker_labels(
        image, seeds, num_classes=max(classes, 2), beta=beta, min_margin=min_margin, spacing=spacing
    )
    label = label.copy()
    for c in sorted({int(b.label) for b in boxes}):
        inside = np.zeros(shape, dtype=bool)
        for box in boxes:
            if int(box.label) == c:
                inside[_span(box, shape[0], shape[1], 0)] = True
        label[(label == c) & ~inside] = 0
    return label, confidence
