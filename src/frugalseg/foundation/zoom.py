"""Box-centred zoom: segment each prompted object in a crop around its box instead of in the whole image.

LiteMedSAM sees every image at 256 pixels on its longest side, so an object filling half of an 800-pixel
ultrasound frame is outlined on a grid three image pixels coarse. A square window of ``context`` times the
box's longest side, centred on the box and clipped to the image, is encoded instead: the object then spans
most of the model frame and its outline is placed on a finer grid. The zero-shot model was trained on whole
images and under-segments in such crops, so zoom is for a decoder fine-tuned on crops
(:class:`~frugalseg.foundation.finetune.FinetuneConfig` ``zoom``), which learns where the outline lies at
that scale. It costs one encoder pass per object instead of per image.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import torch

from frugalseg.data.case import Case
from frugalseg.errors import InputError
from frugalseg.foundation.prompting import jitter_boxes
from frugalseg.foundation.prompts import Embedding, MaskPrediction, Prompts
from frugalseg.foundation.protocol import PromptableSegmenter

__all__ = ["image_embedding", "predict_on_image", "segment_zoomed", "zoom_context", "zoom_crops", "zoom_window"]

_OUTSIDE_LOGIT = -20.0
"""Logit given to pixels outside an object's window (certainly background for that object)."""


def zoom_window(box: Sequence[float], image_size: tuple[int, int], context: float) -> tuple[slice, slice]:
    """``(rows, cols)`` slices of the square window of side ``context * max(box w, h)`` centred on ``box``.

    ``box`` is ``(xmin, ymin, xmax, ymax)``, max exclusive; the window is clipped to the ``(H, W)`` image and
    always holds the box.
    """
    if context < 1.0:
        raise InputError(f"zoom context {context}: expected >= 1 (the window must hold the box)")
    xmin, ymin, xmax, ymax = (float(v) for v in box)
    height, width = image_size
    half = context * max(xmax - xmin, ymax - ymin, 1.0) / 2
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    row0, row1 = max(0, int(np.floor(min(cy - half, ymin)))), min(height, int(np.ceil(max(cy + half, ymax))))
    col0, col1 = max(0, int(np.floor(min(cx - half, xmin)))), min(width, int(np.ceil(max(cx + half, xmax))))
    return slice(row0, row1), slice(col0, col1)


def _shift_box(box: np.ndarray, window: tuple[slice, slice]) -> np.ndarray:
    rows, cols = window
    offset = np.array([cols.start, rows.start, cols.start, rows.start], dtype=np.float64)
    limit = np.array([cols.stop, rows.stop, cols.stop, rows.stop], dtype=np.float64) - offset
    return np.clip(np.asarray(box, dtype=np.float64) - offset, 0.0, limit)


def segment_zoomed(
    segmenter: PromptableSegmenter,
    image: np.ndarray,
    prompts: Prompts,
    *,
    context: float,
    encode: Callable[[np.ndarray], Embedding] | None = None,
) -> MaskPrediction:
    """Predict each box-prompted object from the crop around its box, pasted back at the image size.

    Args:
        segmenter: the model.
        image: ``(H, W)`` or ``(H, W, C)``.
        prompts: one box per object (points, if any, are kept where they fall inside the window).
        context: window side over the box's longest side (see :func:`zoom_window`).
        encode: how crops are embedded (e.g. a :class:`~frugalseg.foundation.cache.CachedSegmenter`'s);
            default ``segmenter.encode``.

    Raises:
        InputError: an object without a box, or a prompt outside the image.

    Shape:
        returns masks and logits ``(N, H, W)``, scores ``(N,)``.
    """
    if prompts.boxes is None:
        raise InputError("zoomed segmentation needs a box per object; give box prompts")
    size = (int(np.shape(image)[0]), int(np.shape(image)[1]))
    prompts.check_inside(size)
    encode = encode or segmenter.encode
    logits = torch.full((prompts.num_objects, *size), _OUTSIDE_LOGIT)
    scores = torch.zeros(prompts.num_objects)
    for index, box in enumerate(prompts.boxes):
        window = zoom_window(box, size, context)
        points = labels = None
        if prompts.points is not None and prompts.point_labels is not None:
            offset = np.array([window[1].start, window[0].start], dtype=np.float64)
            points = prompts.points[index : index + 1] - offset
            extent = np.array([window[1].stop, window[0].stop], dtype=np.float64) - offset
            inside = np.all((points >= 0) & (points <= extent - 1), axis=-1)
            labels = np.where(inside, prompts.point_labels[index : index + 1], -1)
            points = np.clip(points, 0, extent - 1)
        crop_prompts = Prompts(
            boxes=_shift_box(box, window)[None], points=points, point_labels=labels, tight_boxes=prompts.tight_boxes
        )
        crop = np.asarray(image)[window]
        prediction = segmenter.predict(encode(crop), crop_prompts)
        logits[index, window[0], window[1]] = prediction.logits[0]
        scores[index] = prediction.scores[0]
    return MaskPrediction(masks=logits > 0, scores=scores, logits=logits)


def zoom_context(segmenter: PromptableSegmenter) -> float:
    """The crop context ``segmenter``'s decoder was fine-tuned at (its ``zoom``; 0: whole images)."""
    return float(getattr(segmenter, "zoom", 0.0))


def image_embedding(
    segmenter: PromptableSegmenter, image: np.ndarray, *, encode: Callable[[np.ndarray], Embedding] | None = None
) -> Embedding | None:
    """The whole-image embedding :func:`predict_on_image` uses, to encode once for several predictions;
    ``None`` for a zoom segmenter, which encodes a crop per object instead."""
    return None if zoom_context(segmenter) else (encode or segmenter.encode)(image)


def predict_on_image(
    segmenter: PromptableSegmenter,
    image: np.ndarray,
    prompts: Prompts,
    *,
    embedding: Embedding | None = None,
    encode: Callable[[np.ndarray], Embedding] | None = None,
) -> MaskPrediction:
    """``segmenter``'s prediction for ``image``: from box-centred crops when its decoder was fine-tuned on them
    (``segmenter.zoom > 0``), else from ``embedding`` (encoded with ``encode`` when not given).

    Shape:
        returns masks and logits ``(N, H, W)``, scores ``(N,)``.
    """
    encode = encode or segmenter.encode
    zoom = zoom_context(segmenter)
    if zoom:
        return segment_zoomed(segmenter, image, prompts, context=zoom, encode=encode)
    return segmenter.predict(embedding if embedding is not None else encode(image), prompts)


def zoom_crops(
    case: Case, boxes: np.ndarray, *, context: float, views: int, jitter: float, rng: np.random.Generator
) -> list[Case]:
    """Training crops of a labelled case: per object box, the window around it and ``views`` windows around
    jittered copies of it (as a user's box moves the window), each a case with the cropped image and label.

    Shape:
        boxes: ``(N, 4)`` xyxy, max exclusive.
    """
    assert case.label is not None
    size = case.label.shape[:2]
    crops = []
    for index, box in enumerate(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)):
        centres = [box, *jitter_boxes(np.repeat(box[None], views, 0), size, fraction=jitter, rng=rng)]
        for view, centre in enumerate(centres[: views + 1]):
            rows, cols = zoom_window(centre, size, context)
            crops.append(
                dataclasses.replace(
                    case,
                    case_id=f"{case.case_id}-zoom{index}.{view}",
                    image=np.asarray(case.image)[rows, cols],
                    label=np.asarray(case.label)[rows, cols],
                )
            )
    return crops
