"""Pseudo-masks from weak annotations with a promptable segmenter, with a confidence per object.

For each case: prompts from its annotation (:mod:`frugalseg.foundation.prompting`), one ``encode``, one
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

An empty box list means "no object in this image": its mask is all background (weight 1). A case's
``weight`` is the smallest weight of its objects.

IVUS (``ivus=True``) instead makes ``lumen`` the union of the lumen masks and ``wall`` the union of the vessel
masks minus the lumen (:func:`~frugalseg.foundation.prompting.ivus_label_map`); a dropped object's region is
``IGNORE`` except where a kept lumen mask covers it.

Output folder (resumable: a case whose mask and JSON both exist is skipped; every file is written atomically,
the JSON last)::

    out_dir/masks/<case_id>.png          palette PNG, class indices and 255 = IGNORE
    out_dir/confidence/<case_id>.json    {"objects": [{class, box, predicted_iou, stability, confidence,
                                           kept, weight, area}, ...], "weight": ..., settings}
    out_dir/pseudolabels.json            settings and a summary of all cases in the folder
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from frugalseg.annotations.kinds import Annotation, Boxes
from frugalseg.atomic import atomic_write_json
from frugalseg.data.case import IGNORE, Case
from frugalseg.data.images import read_mask, write_mask_png
from frugalseg.errors import InputError
from frugalseg.foundation.prompting import (
    IVUS_LUMEN,
    ObjectPrompts,
    ivus_label_map,
    ivus_prompts,
    jitter_prompts,
    prompts_from_annotation,
)
from frugalseg.foundation.prompts import MaskPrediction, Prompts
from frugalseg.foundation.protocol import PromptableSegmenter
from frugalseg.foundation.zoom import image_embedding, predict_on_image
from frugalseg.metrics import jaccard_score

__all__ = [
    "FORMAT",
    "PseudolabelReport",
    "combine_by_class",
    "combine_confidence",
    "load_pseudolabels",
    "prompt_stability",
    "pseudolabel_case",
    "pseudolabel_dataset",
]

FORMAT = "frugalseg-pseudolabels"
SCHEMA_VERSION = 1
PREFERRED_KINDS = ("boxes", "scribbles", "points")
"""Kind used when a case carries several annotations and ``kind`` is not given."""


@dataclass(frozen=True)
class PseudolabelReport:
    """What :func:`pseudolabel_dataset` did.

    Attributes:
        out_dir: the output folder.
        written: case ids processed in this call.
        skipped: case ids whose outputs already existed.
        missing: case ids with no usable annotation (no output).
        objects_kept, objects_dropped: object counts over the cases written in this call.
    """

    out_dir: Path
    written: tuple[str, ...]
    skipped: tuple[str, ...]
    missing: tuple[str, ...]
    objects_kept: int
    objects_dropped: int


def combine_confidence(predicted_iou: float, stability: float | None) -> float:
    """``sqrt(clip(predicted_iou, 0, 1) * stability)``; ``clip(predicted_iou, 0, 1)`` without a stability."""
    iou = float(np.clip(predicted_iou, 0.0, 1.0))
    return iou if stability is None else float(np.sqrt(iou * float(np.clip(stability, 0.0, 1.0))))


def _concatenate(every: Sequence[Prompts]) -> Prompts:
    """Prompt sets of the same kind concatenated object-wise (one predict call for all)."""
    first = every[0]
    boxes = None if first.boxes is None else np.concatenate([p.boxes for p in every if p.boxes is not None])
    if first.points is None or first.point_labels is None:
        return Prompts(boxes=boxes)
    points = np.concatenate([p.points for p in every if p.points is not None])
    labels = np.concatenate([p.point_labels for p in every if p.point_labels is not None])
    return Prompts(boxes=boxes, points=points, point_labels=labels)


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


def _choose(annotation: Annotation | Mapping[str, Annotation], kind: str | None) -> Annotation | None:
    """The annotation to prompt with: ``annotation`` itself, or from a ``{kind: annotation}`` mapping."""
    if not isinstance(annotation, Mapping):
        return annotation if kind is None or annotation.kind == kind else None
    if kind is not None:
        return annotation.get(kind)
    return next((annotation[k] for k in PREFERRED_KINDS if k in annotation), None)


def _case_seed(seed: int, case_id: str) -> np.random.Generator:
    """A generator for one case that does not depend on which other cases run (resumable, order-free)."""
    return np.random.default_rng([seed, zlib.crc32(case_id.encode())])


def _paths(out_dir: Path, case_id: str) -> tuple[Path, Path]:
    if not case_id or case_id.startswith(("/", "\\")) or ".." in Path(case_id).parts:
        raise InputError(f"case id {case_id!r} cannot name an output file")
    return out_dir / "masks" / f"{case_id}.png", out_dir / "confidence" / f"{case_id}.json"


def pseudolabel_dataset(
    segmenter: PromptableSegmenter,
    cases: Sequence[Case],
    annotations: Mapping[str, Annotation | Mapping[str, Annotation]],
    *,
    out_dir: str | Path,
    kind: str | None = None,
    jitter_trials: int = 4,
    jitter_fraction: float = 0.1,
    min_confidence: float = 0.5,
    policy: str = "drop",
    ivus: bool = False,
    seed: int = 0,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> PseudolabelReport:
    """Write a pseudo-mask PNG and a confidence JSON per annotated case into ``out_dir`` (resumable).

    Args:
        segmenter: any promptable segmenter (wrap it in a :class:`~frugalseg.foundation.CachedSegmenter` to
            reuse embeddings across runs).
        cases: the images.
        annotations: per case id, one annotation or ``{kind: annotation}`` (e.g. from
            :func:`~frugalseg.annotations.read_annotations_json`).
        out_dir: output folder (see the module docstring for its layout).
        kind: the annotation kind to use from a mapping (default: the first of boxes, scribbles, points).
        jitter_trials: jittered prompts per object for the stability (0 disables it).
        jitter_fraction: jitter amplitude as a fraction of the box size.
        min_confidence: objects below are dropped (``policy="drop"``) or down-weighted (``"weight"``).
        policy: ``"drop"`` or ``"weight"``.
        ivus: IVUS boxes (lumen and vessel, wall = vessel minus lumen).
        seed: seeds the jitter and the points sampled on scribbles (per case, independent of order).
        progress: called after each case with ``{"case_id", "index", "total", "status", "kept", "dropped"}``.

    Raises:
        InputError: no case has a usable annotation, or an annotation gives no prompt.
    """
    out_dir = Path(out_dir)
    settings = {
        "model_id": segmenter.model_id,
        "weights_sha256": segmenter.weights_sha256,
        "kind": kind,
        "jitter_trials": jitter_trials,
        "jitter_fraction": jitter_fraction,
        "min_confidence": min_confidence,
        "policy": policy,
        "ivus": ivus,
        "seed": seed,
    }
    chosen = [(case, _choose(annotations[case.case_id], kind)) for case in cases if case.case_id in annotations]
    todo = [(case, annotation) for case, annotation in chosen if annotation is not None]
    missing = tuple(case.case_id for case in cases if case.case_id not in {c.case_id for c, _ in todo})
    if not todo:
        raise InputError(f"none of the {len(cases)} cases has a usable annotation (kind={kind or 'any'})")
    written, skipped, kept_total, dropped_total = [], [], 0, 0
    for index, (case, annotation) in enumerate(todo):
        mask_path, json_path = _paths(out_dir, case.case_id)
        status, kept, dropped = "skipped", 0, 0
        if mask_path.is_file() and json_path.is_file():
            skipped.append(case.case_id)
        else:
            if isinstance(annotation, Boxes) and not len(annotation):
                # "no object here": all background
                label, records = np.zeros(case.shape, dtype=np.uint8), list[dict[str, Any]]()
            else:
                if ivus and isinstance(annotation, Boxes):
                    objects = ivus_prompts(annotation, case.shape)
                else:
                    objects = prompts_from_annotation(annotation, case.shape, seed=_case_seed(seed, case.case_id))
                label, records = pseudolabel_case(
                    segmenter,
                    case.image,
                    objects,
                    jitter_trials=jitter_trials,
                    jitter_fraction=jitter_fraction,
                    min_confidence=min_confidence,
                    policy=policy,
                    ivus=ivus,
                    rng=_case_seed(seed, case.case_id),
                )
            kept = sum(r["kept"] for r in records)
            dropped = len(records) - kept
            write_mask_png(mask_path, label)
            weights = [r["weight"] for r in records]
            entry = {
                "format": FORMAT,
                "schema_version": SCHEMA_VERSION,
                "case_id": case.case_id,
                "annotation": annotation.kind,
                **settings,
                "weight": float(min(weights)) if weights else 1.0,
                "objects": records,
            }
            atomic_write_json(json_path, entry)
            written.append(case.case_id)
            kept_total, dropped_total, status = kept_total + kept, dropped_total + dropped, "written"
        if progress is not None:
            progress(
                {
                    "case_id": case.case_id,
                    "index": index + 1,
                    "total": len(todo),
                    "status": status,
                    "kept": kept,
                    "dropped": dropped,
                }
            )
    _write_summary(out_dir, settings, [case.case_id for case, _ in todo], missing)
    return PseudolabelReport(out_dir, tuple(written), tuple(skipped), missing, kept_total, dropped_total)


def _write_summary(out_dir: Path, settings: dict[str, Any], case_ids: Sequence[str], missing: Sequence[str]) -> None:
    """``pseudolabels.json``: the settings and, per case, its weight and kept/dropped object counts."""
    summary: dict[str, Any] = {}
    for case_id in case_ids:
        entry = json.loads(_paths(out_dir, case_id)[1].read_text())
        objects = entry["objects"]
        summary[case_id] = {
            "weight": entry["weight"],
            "kept": sum(o["kept"] for o in objects),
            "dropped": sum(not o["kept"] for o in objects),
            "mean_confidence": float(np.mean([o["confidence"] for o in objects])) if objects else None,
        }
    atomic_write_json(
        out_dir / "pseudolabels.json",
        {"format": FORMAT, "schema_version": SCHEMA_VERSION, **settings, "missing": list(missing), "cases": summary},
    )


def load_pseudolabels(cases: Sequence[Case], out_dir: str | Path) -> list[Case]:
    """Copies of ``cases`` whose ``label`` is their pseudo-mask from ``out_dir`` (cases without one are left out).

    This is what ``frugalseg train --labels pseudo:DIR`` trains on; ``IGNORE`` pixels do not count in the loss.

    Raises:
        InputError: ``out_dir`` holds no pseudo-mask of any of the cases, or a mask does not fit its image.
    """
    out_dir = Path(out_dir)
    labelled = []
    for case in cases:
        mask_path, json_path = _paths(out_dir, case.case_id)
        if mask_path.is_file() and json_path.is_file():
            label = read_mask(mask_path, expected_shape=case.shape)
            labelled.append(dataclasses.replace(case, label=label))
    if not labelled:
        raise InputError(f"{out_dir}: no pseudo-mask for any of the {len(cases)} cases (run frugalseg pseudolabel)")
    return labelled
