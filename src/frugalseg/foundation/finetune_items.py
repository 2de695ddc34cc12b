"""The training items of LiteMedSAM fine-tuning (:mod:`frugalseg.foundation.finetune`): per image, what the
encoder gave once, its objects' boxes and targets; the logits and loss of an item for a set of box prompts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from frugalseg.data.case import Case
from frugalseg.errors import InputError
from frugalseg.foundation.finetune_targets import dice_bce_loss, mask_to_model_frame, object_targets
from frugalseg.foundation.litemedsam import IMAGE_SIZE, LiteMedSAMSegmenter
from frugalseg.foundation.preprocess import boxes_to_model_frame
from frugalseg.foundation.prompts import Embedding
from frugalseg.foundation.zoom import zoom_crops

__all__ = ["TrainingItem", "item_logits", "item_loss", "mask_box", "training_items", "zoomed_cases"]


@dataclass(frozen=True)
class TrainingItem:
    """One training image: its embedding, object boxes (original pixels) and targets in the model frame.

    With ``entry_stage`` set, ``embedding.features`` holds the image encoder's activations entering that stage
    (:meth:`~frugalseg.foundation.litemedsam.LiteMedSAMSegmenter.encode_to_stage`) instead of the
    embedding, and the later stages run at every use.

    Shape:
        boxes: ``(N, 4)`` xyxy, max exclusive; targets: ``(N, h, w)`` 0/1 at the image's size in the model frame.
    """

    embedding: Embedding
    boxes: np.ndarray
    targets: torch.Tensor
    entry_stage: int | None = None


def training_items(
    cases: Sequence[Case],
    encode: Callable[[np.ndarray], Embedding],
    *,
    ivus: bool,
    min_pixels: int,
    entry_stage: int | None = None,
) -> list[TrainingItem]:
    """The items of the labelled ``cases`` that hold an object (see
    :func:`~frugalseg.foundation.finetune_targets.object_targets`), each image encoded once with ``encode``.

    Raises:
        InputError: a case without a label map, or no object of at least ``min_pixels`` pixels in any case.
    """
    items = []
    for case in cases:
        objects = object_targets(_label(case), ivus=ivus, min_pixels=min_pixels)
        if not objects:
            continue
        embedding = encode(case.image)
        boxes = np.asarray([mask_box(mask) for _, mask in objects], dtype=np.float64)
        targets = torch.stack([mask_to_model_frame(mask, embedding.resized_size) for _, mask in objects])
        items.append(TrainingItem(embedding, boxes, targets, entry_stage))
    if not items:
        raise InputError(f"none of the {len(cases)} cases has an object of at least {min_pixels} pixels")
    return items


def _label(case: Case) -> np.ndarray:
    if case.label is None:
        raise InputError(f"case {case.case_id} has no label map; fine-tuning needs fully labelled images")
    return case.label


def zoomed_cases(
    cases: Sequence[Case], *, context: float, views: int, jitter: float, ivus: bool, min_pixels: int, seed: int
) -> list[Case]:
    """The training crops of ``cases`` around their objects' boxes (:func:`~frugalseg.foundation.zoom.zoom_crops`)."""
    crops: list[Case] = []
    for index, case in enumerate(cases):
        objects = object_targets(_label(case), ivus=ivus, min_pixels=min_pixels)
        boxes = np.array([mask_box(mask) for _, mask in objects], dtype=np.float64).reshape(-1, 4)
        rng = np.random.default_rng([seed, index])
        crops += zoom_crops(case, boxes, context=context, views=views, jitter=jitter, rng=rng)
    return crops


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The tight ``(xmin, ymin, xmax, ymax)`` box (max exclusive) of a non-empty mask."""
    rows, cols = np.nonzero(mask)
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def item_logits(segmenter: LiteMedSAMSegmenter, item: TrainingItem, boxes: np.ndarray) -> torch.Tensor:
    """Logits of one image's objects prompted with ``boxes`` (original pixels), at the targets' ``(N, h, w)``."""
    device = segmenter.device
    original = item.embedding.original_size
    frame_boxes = boxes_to_model_frame(boxes, original, image_size=IMAGE_SIZE, margin=segmenter.box_margin)
    features = item.embedding.features.to(device)
    if item.entry_stage is not None:
        features = segmenter.model.image_encoder.late_features(features, item.entry_stage)
    low_res, _ = segmenter.model.decode(features, boxes=frame_boxes.to(device))
    h, w = item.targets.shape[1:]
    scale = low_res.shape[-1] / IMAGE_SIZE
    crop_h, crop_w = max(1, round(h * scale)), max(1, round(w * scale))
    logits = low_res[:, 0, :crop_h, :crop_w]
    if (crop_h, crop_w) != (h, w):
        logits = F.interpolate(logits[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    return logits


def item_loss(segmenter: LiteMedSAMSegmenter, item: TrainingItem, boxes: np.ndarray) -> torch.Tensor:
    """Mean loss of one image's objects prompted with ``boxes`` (original pixels)."""
    return dice_bce_loss(item_logits(segmenter, item, boxes), item.targets.to(segmenter.device))
