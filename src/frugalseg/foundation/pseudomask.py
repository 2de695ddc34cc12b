"""One image's pseudo-mask from its prompts with a promptable segmenter, with a confidence per object.

For one image and its prompts (:mod:`frugalseg.foundation.prompting`): one ``encode``, one
``predict`` of the prompts and one batched ``predict`` of ``jitter_trials`` jittered copies of each, then per
object:

* ``predicted_iou``: the model's own IoU estimate (``MaskPrediction.scores``), clipped to ``[0, 1]``;
* ``stability``: the mean IoU between the masks from jittered prompts and the mask from the original prompt
  (:func:`prompt_stability`; each box side moves by ``uniform(-jitter_fraction, jitter_fraction)`` times the
  box's width or height; point-only objects move their points by up to ``jitter_fraction * sqrt(mask area)``
  pixels); two empty masks have IoU 1;
* ``confidence = sqrt(predicted_iou * stability)`` (their geometric mean; ``predicted_iou`` alone when
  ``jitter_trials == 0``).

A segmenter whose decoder was fine-tuned on box-centred crops (``segmenter.zoom > 0``) predicts every object,
and every jittered copy, from the crop around its box (:func:`~frugalseg.foundation.zoom.segment_zoomed`): one
encoder pass per prompt instead of per image.

Objects with ``confidence < min_confidence`` are **dropped** (``policy="drop"``) or kept and **down-weighted**
(``policy="weight"``: the object's ``weight`` is its confidence, saved in the JSON; dropped objects have
weight 0). Objects combine into one label map by class (:func:`combine_by_class`):

1. a pixel takes the class of the kept object, among those whose mask covers it, with the largest logit;
   pixels no kept mask covers are background (0);
2. pixels of a dropped object's region (its mask and its box) that no kept mask claims become ``IGNORE``
   (255): the annotation says something is there and the model's answer is not trusted.

IVUS (``ivus=True``) instead makes ``lumen`` the union of the lumen masks and ``wall`` the union of the vessel
masks minus the lumen (:func:`~frugalseg.foundation.prompting.ivus_label_map`); a dropped object's region is
``IGNORE`` except where a kept lumen mask covers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from frugalseg.data.case import IGNORE
from frugalseg.foundation.prompting import IVUS_LUMEN, ObjectPrompts, ivus_label_map, jitter_prompts
from frugalseg.foundation.prompts import MaskPrediction, Prompts
from frugalseg.foundation.protocol import PromptableSegmenter
from frugalseg.foundation.zoom import image_embedding, predict_on_image
from frugalseg.metrics import jaccard_score

__all__ = ["combine_by_class", "combine_confidence", "prompt_stability", "pseudolabel_case"]


def combine_confidence(predicted_iou: float, stability: float | None) -> float:
    """``sqrt(clip(predicted_iou, 0, 1) * stability)``; ``clip(predicted_iou, 0, 1)`` without a stability."""
    iou = float(np.clip(predicted_iou, 0.0, 1.0))
    return iou if stability is None else float(np.sqrt(iou * float(np.clip(stability, 0.0, 1.0))))


def _concatenate(every: Sequence[Prompts]) -> Prompts:
    """Prompt sets of the same kind concatenated object-wise (one predict call for all)."""
    first = every[0]
    boxes = None if first.boxes is None else np.concatenate([p.boxes for p in every if p.boxes is not None])
    tight = all(p.tight_boxes for p in every)
    if first.points is None or first.point_labels is None:
        return Prompts(boxes=boxes, tight_boxes=tight)
    points = np.concatenate([p.points for p in every if p.points is not None])
    labels = np.concatenate([p.point_labels for p in every if p.point_labels is not None])
    return Prompts(boxes=boxes, points=points, point_labels=labels, tight_boxes=tight)


def prompt_stability(reference: torch.Tensor, jittered: torch.Tensor) -> np.ndarray:
    """Mean IoU between each object's jittered masks and its reference mask (two empty masks: IoU 1).

    Shape:
        reference: ``(N, H, W)`` bool; jittered: ``(T, N, H, W)`` bool; returns ``(N,)`` float64.
    """
    if jittered.shape[1:] != reference.shape:
        raise ValueError(f"jittered masks {tuple(jittered.shape)} do not match reference {tuple(reference.shape)}")
    ref, jit = reference.numpy(), jittered.numpy()
    return np.array(
        [np.mean([jaccard_score(jit[t, n], ref[n]) for t in range(jit.shape[0])]) for n in range(ref.shape[0])]
    )


def _regions(prompts: Prompts, masks: np.ndarray) -> np.ndarray:
    """Each object's mask united with its box (when it has one). Shape: ``(N, H, W)`` bool."""
    regions = masks.copy()
    if prompts.boxes is not None:
        for index, (x0, y0, x1, y1) in enumerate(np.asarray(prompts.boxes)):
            regions[index, int(np.floor(y0)) : int(np.ceil(y1)), int(np.floor(x0)) : int(np.ceil(x1))] = True
    return regions


def combine_by_class(
    prediction: MaskPrediction,
    classes: Sequence[int],
    *,
    keep: np.ndarray,
    regions: np.ndarray | None = None,
    ivus: bool = False,
) -> np.ndarray:
    """One label map from per-object masks, by the overlap rule of the module docstring.

    Args:
        prediction: masks and logits of the ``N`` objects.
        classes: class of each object.
        keep: ``(N,)`` bool, the objects kept.
        regions: ``(N, H, W)`` bool region of each object made ``IGNORE`` when it is dropped (default: its mask).
        ivus: the IVUS rule (lumen, wall = vessel minus lumen).

    Shape:
        returns ``(H, W)`` uint8.
    """
    masks = prediction.masks.numpy().astype(bool)
    logits = prediction.logits.numpy()
    keep = np.asarray(keep, dtype=bool)
    classes_array = np.asarray(classes, dtype=np.int64)
    if len(classes_array) != masks.shape[0] or keep.shape != (masks.shape[0],):
        raise ValueError(f"{masks.shape[0]} masks, {len(classes_array)} classes, keep of shape {keep.shape}")
    regions = masks if regions is None else np.asarray(regions, dtype=bool)
    kept_masks = masks[keep]
    if ivus:
        kept_classes = classes_array[keep]
        empty = np.zeros(masks.shape[1:], dtype=bool)
        lumen = kept_masks[kept_classes == IVUS_LUMEN].any(axis=0) if keep.any() else empty
        vessel = kept_masks[kept_classes != IVUS_LUMEN].any(axis=0) if keep.any() else empty
        label = ivus_label_map(lumen, vessel)
        claimed = lumen
    else:
        label = np.zeros(masks.shape[1:], dtype=np.uint8)
        claimed = np.zeros(masks.shape[1:], dtype=bool)
        if keep.any():
            scores = np.where(kept_masks, logits[keep], -np.inf)
            winner = scores.argmax(axis=0)
            claimed = kept_masks.any(axis=0)
            label[claimed] = classes_array[keep][winner[claimed]]
    if (~keep).any():
        label[regions[~keep].any(axis=0) & ~claimed] = IGNORE
    return label


def pseudolabel_case(
    segmenter: PromptableSegmenter,
    image: np.ndarray,
    objects: ObjectPrompts,
    *,
    jitter_trials: int = 4,
    jitter_fraction: float = 0.1,
    min_confidence: float = 0.5,
    policy: str = "drop",
    ivus: bool = False,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Pseudo-mask and per-object confidence records of one image (see the module docstring).

    Returns:
        The ``(H, W)`` uint8 label map and one record per object: ``class``, ``box`` (or None),
        ``num_points``, ``predicted_iou``, ``stability`` (or None), ``confidence``, ``kept``, ``weight``, ``area``.
    """
    if policy not in ("drop", "weight"):
        raise ValueError(f"policy={policy!r}: expected 'drop' or 'weight'")
    if jitter_trials < 0 or not 0.0 <= jitter_fraction < 0.5:
        raise ValueError(f"jitter_trials={jitter_trials}, jitter_fraction={jitter_fraction}: expected >= 0, [0, 0.5)")
    size = (int(np.shape(image)[0]), int(np.shape(image)[1]))
    prompts, count = objects.prompts, objects.num_objects
    embedding = image_embedding(segmenter, image)
    first = predict_on_image(segmenter, image, prompts, embedding=embedding)
    stability: np.ndarray | None = None
    if jitter_trials:
        area = first.masks.flatten(1).sum(1).numpy()
        copies = [
            jitter_prompts(prompts, size, fraction=jitter_fraction, rng=rng, masks_area=area)
            for _ in range(jitter_trials)
        ]
        jittered = predict_on_image(segmenter, image, _concatenate(copies), embedding=embedding).masks
        stability = prompt_stability(first.masks, jittered.reshape(jitter_trials, count, *size))
    records, keep = [], np.zeros(count, dtype=bool)
    for index in range(count):
        stable = None if stability is None else float(stability[index])
        confidence = combine_confidence(float(first.scores[index]), stable)
        kept = policy == "weight" or confidence >= min_confidence
        keep[index] = kept
        box = None if prompts.boxes is None else [float(v) for v in prompts.boxes[index]]
        num_points = 0 if prompts.point_labels is None else int((prompts.point_labels[index] != -1).sum())
        records.append(
            {
                "class": objects.classes[index],
                "box": box,
                "num_points": num_points,
                "predicted_iou": float(first.scores[index]),
                "stability": stable,
                "confidence": confidence,
                "kept": bool(kept),
                "weight": (confidence if policy == "weight" else 1.0) if kept else 0.0,
                "area": int(first.masks[index].sum()),
            }
        )
    regions = _regions(prompts, first.masks.numpy().astype(bool))
    return combine_by_class(first, objects.classes, keep=keep, regions=regions, ivus=ivus), records
