"""Simulated annotators: weak annotations drawn from a full label map, replayable from a seed.

Every simulator takes a full ``(H, W)`` integer label map (0 background, classes ``1..254``, ``IGNORE``
pixels are neither) and, when it draws at random, an explicit ``rng`` (a ``numpy.random.Generator``, or an
``int`` seed for a fresh one); the same seed gives the same annotation.

* :func:`simulate_tags`: the foreground classes present.
* :func:`simulate_boxes`: the tight box of each object (8-connected component) or of each class, optionally
  jittered like a hurried annotator.
* :func:`simulate_points`: clicks biased to the interior of each object (probability growing with the
  distance to its border) and negative clicks on background away from objects.
* :func:`simulate_scribbles`: strokes along the skeleton of each eroded class region, cut into segments.
  Valvano et al. (IEEE TMI 2021, "Learning to segment from scribbles using multi-scale adversarial attention
  gates") drew the ACDC scribbles by hand and, for datasets without scribbles, made them from masks by
  skeletonising each class mask and thickening the skeleton inside the mask; this simulator follows that
  recipe, erodes first (annotators keep away from borders), keeps random segments separated by random gaps
  (strokes do not trace the whole structure), and draws background strokes both on a ring around the objects
  (what separates an object from its surroundings) and along the skeleton of the rest of the eroded
  background (as every class, background included, was scribbled in ACDC).
  Round objects, whose skeleton is a dot, get a stroke along their major axis instead.
* :func:`simulate_partial`: drop the classes not annotated (they become background).
* :func:`simulate`: dispatch by kind name.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
from scipy import ndimage
from skimage.draw import line as draw_line
from skimage.morphology import disk, skeletonize

from frugalseg.annotations.kinds import Annotation, Boxes, PartialLabels, Point, Points, Scribbles, Tags
from frugalseg.data.case import IGNORE, Box

__all__ = [
    "simulate",
    "simulate_boxes",
    "simulate_partial",
    "simulate_points",
    "simulate_scribbles",
    "simulate_tags",
]

Per = Literal["component", "class"]
_EIGHT = np.ones((3, 3), dtype=bool)


def _generator(rng: np.random.Generator | int | None, what: str) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, int | np.integer) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ValueError(f"{what}: rng must be a numpy Generator or an int seed, got {type(rng).__name__}")


def _as_label(label: np.ndarray) -> np.ndarray:
    array = np.asarray(label)
    if array.ndim != 2 or array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"label: expected a 2D integer (H, W) class map, got {array.dtype} {array.shape}")
    if array.size and (int(array.min()) < 0 or int(array.max()) > 255):
        raise ValueError(f"label: values {int(array.min())}..{int(array.max())} do not fit 0..255")
    return array.astype(np.uint8, copy=False)


def _foreground_classes(label: np.ndarray) -> list[int]:
    counts = np.bincount(label.ravel(), minlength=256)
    return [int(c) for c in np.flatnonzero(counts) if 0 < c < IGNORE]


def _objects(label: np.ndarray, per: Per, min_pixels: int) -> Iterator[tuple[int, tuple[slice, slice], np.ndarray]]:
    """``(class, bounding slice, object mask inside the slice)`` for every object, class by class."""
    if per not in ("component", "class"):
        raise ValueError(f"per={per!r}: expected 'component' or 'class'")
    for c in _foreground_classes(label):
        mask = label == c
        if per == "class":
            components, count = mask.astype(np.int32), 1
        else:
            components, count = ndimage.label(mask, structure=_EIGHT)
        for index, window in enumerate(ndimage.find_objects(components), start=1):
            if window is None or index > count:
                continue
            inside = components[window] == index
            if int(inside.sum()) >= min_pixels:
                yield c, (window[0], window[1]), inside


def simulate_tags(label: np.ndarray, *, min_pixels: int = 1) -> Tags:
    """Tags: the foreground classes with at least ``min_pixels`` pixels, ascending.

    Shape:
        label: ``(H, W)``.
    """
    label = _as_label(label)
    counts = np.bincount(label.ravel(), minlength=256)
    return Tags(tuple(c for c in _foreground_classes(label) if counts[c] >= min_pixels))


def _jitter_span(low: int, high: int, limit: int, jitter: float, rng: np.random.Generator) -> tuple[int, int]:
    side = high - low
    new_low = int(np.clip(np.rint(low + rng.uniform(-jitter, jitter) * side), 0, limit))
    new_high = int(np.clip(np.rint(high + rng.uniform(-jitter, jitter) * side), 0, limit))
    if new_high <= new_low:  # rounding met in the middle: keep one pixel
        new_high = min(limit, new_low + 1)
        new_low = new_high - 1
    return new_low, new_high


def simulate_boxes(
    label: np.ndarray,
    *,
    jitter: float = 0.0,
    per: Per = "component",
    min_pixels: int = 1,
    rng: np.random.Generator | int | None = None,
) -> Boxes:
    """Boxes around the objects of a label map, tight or jittered.

    Args:
        label: full class map.
        jitter: each side moves by ``uniform(-jitter, jitter)`` times the box's width (left/right) or height
            (top/bottom), is rounded to whole pixels and clipped to the image; ``0`` gives the tight box
            (``xmax``/``ymax`` exclusive: one past the last object pixel). Must lie in ``[0, 0.5)`` so a box
            never collapses.
        per: ``"component"`` (one box per 8-connected object) or ``"class"`` (one box per class).
        min_pixels: objects smaller than this get no box.
        rng: required when ``jitter > 0``.

    Returns:
        :class:`Boxes` ordered by class, then by object (top-left first).

    Shape:
        label: ``(H, W)``.
    """
    label = _as_label(label)
    if not 0.0 <= jitter < 0.5:
        raise ValueError(f"jitter={jitter}: expected 0 <= jitter < 0.5")
    generator = _generator(rng, "simulate_boxes") if jitter > 0 else None
    height, width = label.shape
    boxes = []
    for c, (rows, cols), _ in _objects(label, per, min_pixels):
        y0, y1, x0, x1 = rows.start, rows.stop, cols.start, cols.stop
        if generator is not None:
            x0, x1 = _jitter_span(x0, x1, width, jitter, generator)
            y0, y1 = _jitter_span(y0, y1, height, jitter, generator)
        boxes.append(Box(xmin=x0, ymin=y0, xmax=x1, ymax=y1, label=c))
    return Boxes(tuple(boxes))


def _sample(weights: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``min(count, len)`` indices drawn without replacement with probability proportional to ``weights``."""
    count = min(count, int(np.count_nonzero(weights)))
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    return rng.choice(weights.size, size=count, replace=False, p=weights / weights.sum())


def simulate_points(
    label: np.ndarray,
    *,
    points_per_object: int = 1,
    negatives: int = 1,
    per: Per = "component",
    interior_bias: float = 2.0,
    negative_margin: float = 5.0,
    min_pixels: int = 1,
    rng: np.random.Generator | int,
) -> Points:
    """Clicks: positive ones inside each object, negative ones on background away from objects.

    A positive click on an object picks pixel ``p`` with probability proportional to ``d(p) ** interior_bias``,
    ``d`` the distance (pixels) to the nearest pixel outside the object, so clicks avoid the border as people
    do (``interior_bias=0``: uniform). Negative clicks are uniform over background (class 0) pixels at least
    ``negative_margin`` pixels from any object, or over the farthest background pixels when none is that far.

    Args:
        label: full class map.
        points_per_object: positive clicks per object (fewer when the object has fewer pixels).
        negatives: negative clicks per image (fewer when there is less background).
        per: ``"component"`` or ``"class"`` (the clicks of a class spread over all its pixels).
        interior_bias: exponent of the distance weighting.
        negative_margin: minimum distance of a negative click to any object, in pixels.
        min_pixels: objects smaller than this get no click.
        rng: generator or seed.

    Returns:
        :class:`Points`: the positive clicks object by object, then the negative clicks.

    Shape:
        label: ``(H, W)``.
    """
    label = _as_label(label)
    if points_per_object < 0 or negatives < 0 or interior_bias < 0:
        raise ValueError(
            f"points_per_object={points_per_object}, negatives={negatives}, interior_bias={interior_bias}: "
            "expected numbers >= 0"
        )
    generator = _generator(rng, "simulate_points")
    points: list[Point] = []
    for c, (rows, cols), inside in _objects(label, per, min_pixels):
        distance = ndimage.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1]
        weights = np.where(inside, distance, 0.0).ravel() ** interior_bias * inside.ravel()
        for flat in _sample(weights, points_per_object, generator):
            r, col = np.unravel_index(int(flat), inside.shape)
            points.append(Point(int(r) + rows.start, int(col) + cols.start, c))
    background = label == 0
    foreground = (label != 0) & (label != IGNORE)
    if negatives and background.any():
        if foreground.any():
            distance = ndimage.distance_transform_edt(~foreground)
            candidates = background & (distance >= negative_margin)
            if not candidates.any():
                candidates = background & (distance == distance[background].max())
        else:
            candidates = background
        for flat in _sample(candidates.ravel().astype(np.float64), negatives, generator):
            r, col = np.unravel_index(int(flat), label.shape)
            points.append(Point(int(r), int(col), 0))
    return Points(tuple(points))


def _trace(skeleton: np.ndarray) -> list[np.ndarray]:
    """Pixels of each 8-connected piece of a skeleton in depth-first order from an end point.

    Side neighbours are followed before diagonal ones, so the order runs along the curve and only jumps
    back at branches; each piece is an ``(N, 2)`` array of rows and columns.
    """
    pieces, count = ndimage.label(skeleton, structure=_EIGHT)
    neighbours = ndimage.convolve(skeleton.astype(np.int32), _EIGHT.astype(np.int32), mode="constant") - 1
    diagonal = [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    side = [(-1, 0), (0, -1), (0, 1), (1, 0)]
    height, width = skeleton.shape
    out = []
    for index in range(1, count + 1):
        pixels = np.argwhere(pieces == index)
        ends = [p for p in pixels if neighbours[p[0], p[1]] == 1]
        start = ends[0] if ends else pixels[0]
        seen: set[tuple[int, int]] = set()
        stack = [(int(start[0]), int(start[1]))]
        order = []
        while stack:
            r, c = stack.pop()
            if (r, c) in seen:
                continue
            seen.add((r, c))
            order.append((r, c))
            for dr, dc in diagonal + side:  # the last pushed is visited first
                nr, nc = r + dr, c + dc
                if 0 <= nr < height and 0 <= nc < width and skeleton[nr, nc] and (nr, nc) not in seen:
                    stack.append((nr, nc))
        out.append(np.asarray(order, dtype=np.int64).reshape(-1, 2))
    return out


def _major_axis(region: np.ndarray) -> np.ndarray:
    """Pixels of the region's major axis (the line through its centroid along its longest extent)."""
    pixels = np.argwhere(region).astype(np.float64)
    centre = pixels.mean(axis=0)
    if len(pixels) < 2:
        return pixels.astype(np.int64)
    _, vectors = np.linalg.eigh(np.cov((pixels - centre).T))
    direction = vectors[:, -1]
    along = (pixels - centre) @ direction
    start = np.rint(centre + along.min() * direction).astype(int)
    stop = np.rint(centre + along.max() * direction).astype(int)
    rr, cc = draw_line(int(start[0]), int(start[1]), int(stop[0]), int(stop[1]))
    keep = (rr >= 0) & (rr < region.shape[0]) & (cc >= 0) & (cc < region.shape[1])
    rr, cc = rr[keep], cc[keep]
    keep = region[rr, cc]
    return np.stack([rr[keep], cc[keep]], axis=1)


def _strokes(
    region: np.ndarray,
    rng: np.random.Generator,
    segment_length: tuple[int, int],
    gap_length: tuple[int, int],
) -> np.ndarray:
    """Bool mask of the kept stroke centre lines over the skeleton of each component of ``region``."""
    kept = np.zeros(region.shape, dtype=bool)
    components, count = ndimage.label(region, structure=_EIGHT)
    for index, window in enumerate(ndimage.find_objects(components), start=1):
        if window is None or index > count:
            continue
        padded = np.pad(components[window] == index, 1)
        skeleton = skeletonize(padded)
        paths = _trace(skeleton)
        if int(skeleton.sum()) < max(3.0, 0.5 * np.sqrt(padded.sum())):
            paths = [_major_axis(padded)]  # a round blob: its skeleton is a dot
        for path in paths:
            position = int(rng.integers(0, gap_length[1] + 1)) if len(path) > segment_length[1] else 0
            position = min(position, len(path) - 1)
            while position < len(path):
                length = int(rng.integers(segment_length[0], segment_length[1] + 1))
                chosen = path[position : position + length] - 1
                kept[window][chosen[:, 0], chosen[:, 1]] = True
                position += length + int(rng.integers(gap_length[0], gap_length[1] + 1))
    return kept


def _eroded(mask: np.ndarray, erosion: int) -> np.ndarray:
    """``mask`` eroded by a disc of radius ``erosion``, less where that would leave nothing."""
    for radius in range(erosion, 0, -1):
        eroded = ndimage.binary_erosion(mask, structure=disk(radius), border_value=1)
        if eroded.any():
            return eroded
    return mask


def simulate_scribbles(
    label: np.ndarray,
    *,
    rng: np.random.Generator | int,
    erosion: int = 3,
    thickness: int = 3,
    segment_length: tuple[int, int] = (10, 40),
    gap_length: tuple[int, int] = (5, 20),
    background: bool = True,
    background_ring: int = 10,
    classes: Sequence[int] | None = None,
) -> Scribbles:
    """Scribbles along the skeletons of the eroded class regions (see the module docstring).

    For each class (each 8-connected component separately): erode by a disc of radius ``erosion`` (less if
    that empties it), skeletonise (``skimage.morphology.skeletonize``), walk the skeleton and keep segments of
    ``segment_length`` pixels separated by gaps of ``gap_length`` pixels (both drawn uniformly, bounds
    inclusive), then thicken to ``thickness`` pixels and keep only pixels of the class. Background strokes
    are made the same way on the background ring ``erosion < d <= erosion + background_ring`` pixels away
    from the objects and on the rest of the background (``d > erosion + background_ring``) eroded by
    ``erosion`` (the whole eroded background when there is no object). No scribble pixel ever lies on
    another class.

    Args:
        label: full class map.
        rng: generator or seed.
        erosion: erosion radius in pixels before skeletonising.
        thickness: stroke width in pixels (odd).
        segment_length: ``(min, max)`` length of a kept segment, pixels along the skeleton.
        gap_length: ``(min, max)`` length of a gap.
        background: whether to scribble background too.
        background_ring: width of the background ring scribbled around the objects.
        classes: foreground classes to scribble (default: all present).

    Returns:
        :class:`Scribbles` (``IGNORE`` where not scribbled).

    Shape:
        label: ``(H, W)``.
    """
    label = _as_label(label)
    generator = _generator(rng, "simulate_scribbles")
    if thickness < 1 or thickness % 2 == 0 or erosion < 0 or background_ring < 1:
        raise ValueError(
            f"thickness={thickness}, erosion={erosion}, background_ring={background_ring}: expected an odd "
            "thickness >= 1, erosion >= 0 and background_ring >= 1"
        )
    for name, (low, high) in (("segment_length", segment_length), ("gap_length", gap_length)):
        if not 0 <= low <= high or (name == "segment_length" and low < 1):
            raise ValueError(f"{name}={(low, high)}: expected 0 <= min <= max (segments at least 1 pixel)")
    present = _foreground_classes(label)
    chosen = present if classes is None else [int(c) for c in classes if int(c) in present]
    pen = np.ones((thickness, thickness), dtype=bool)
    out = np.full(label.shape, IGNORE, dtype=np.uint8)
    for c in chosen:
        region = label == c
        centre_lines = _strokes(_eroded(region, erosion), generator, segment_length, gap_length)
        out[ndimage.binary_dilation(centre_lines, structure=pen) & region] = c
    if background:
        region = label == 0
        foreground = (label != 0) & (label != IGNORE)
        if foreground.any():
            distance = ndimage.distance_transform_edt(~foreground)
            ring = region & (distance > erosion) & (distance <= erosion + background_ring)
            far = region & (distance > erosion + background_ring)
        else:
            ring, far = _eroded(region, erosion), np.zeros_like(region)
        centre_lines = np.zeros_like(region)
        for part in (ring, _eroded(far, erosion) if far.any() else far):
            if part.any():
                centre_lines |= _strokes(part, generator, segment_length, gap_length)
        out[ndimage.binary_dilation(centre_lines, structure=pen) & region] = 0
    return Scribbles(out)


def simulate_partial(label: np.ndarray, *, annotated_classes: Sequence[int]) -> PartialLabels:
    """Partial labels: the classes not in ``annotated_classes`` become background (``IGNORE`` is kept).

    Shape:
        label: ``(H, W)``.
    """
    label = _as_label(label)
    keep = np.zeros(256, dtype=bool)
    keep[[0, IGNORE, *(int(c) for c in annotated_classes)]] = True
    return PartialLabels(np.where(keep[label], label, 0).astype(np.uint8), tuple(annotated_classes))


def simulate(kind: str, label: np.ndarray, *, rng: np.random.Generator | int, **options: Any) -> Annotation:
    """Simulate an annotation of ``kind`` (``tags``, ``boxes``, ``points``, ``scribbles``, ``partial``).

    ``options`` go to the kind's simulator (``annotated_classes`` is required for ``partial``); ``rng`` is
    ignored by the deterministic ones (``tags``, ``partial``, and ``boxes`` without jitter).

    Raises:
        ValueError: an unknown kind, or options the simulator does not take.
    """
    if kind == "tags":
        return simulate_tags(label, **options)
    if kind == "boxes":
        return simulate_boxes(label, rng=rng, **options)
    if kind == "points":
        return simulate_points(label, rng=rng, **options)
    if kind == "scribbles":
        return simulate_scribbles(label, rng=rng, **options)
    if kind == "partial":
        if "annotated_classes" not in options:
            raise ValueError("simulate('partial', ...) needs annotated_classes=[...]")
        return simulate_partial(label, **options)
    raise ValueError(f"kind={kind!r}: expected one of tags, boxes, points, scribbles, partial")
