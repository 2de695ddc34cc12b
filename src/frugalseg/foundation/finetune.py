"""Adapt LiteMedSAM to a domain: fine-tune its mask decoder (optionally its prompt encoder) on k labelled images.

The image encoder is frozen, so each image is encoded once (through an optional
:class:`~frugalseg.foundation.EmbeddingCache`) and every step only runs the decoder. Each step draws
``images_per_step`` images; every object of an image (an 8-connected component of a class, see
:func:`~frugalseg.foundation.finetune_targets.object_targets`) is prompted with its ground-truth box jittered
by up to ``box_jitter`` of its size (:func:`~frugalseg.foundation.prompting.jitter_boxes`). The loss
(:func:`~frugalseg.foundation.finetune_targets.dice_bce_loss`) compares the decoder's low-resolution logits,
cropped to the image inside the 256x256 frame, with the object's mask resized
to that frame. AdamW with a constant learning rate after a short warm-up.

With ``FinetuneConfig.box_margins`` the box margin is calibrated first (:func:`calibrate_box_margin`): how far
a box prompt is widened moves the outline (on HC18, whose ellipses trace the skull's outer edge, wider boxes
help; on PH2, whose masks follow the pigment, they hurt), so each candidate is scored on the k images with their
exact boxes and the best one is kept, for the fine-tuning and for prediction.

With ``FinetuneConfig.zoom`` the decoder learns from box-centred crops (:mod:`frugalseg.foundation.zoom`), each
object once around its exact box and ``zoom_views`` times around jittered copies, so it outlines objects on
the finer grid a crop gives; predict with :func:`~frugalseg.foundation.zoom.segment_zoomed` at the same context.

Run directory::

    run_dir/config.json    the FinetuneConfig (frozen, with schema version)
    run_dir/decoder.pt     {"format", "base_model_id", "base_weights_sha256", "box_margin", "zoom", "mask_decoder":
                            state_dict, "prompt_encoder": state_dict (only when trained)}
    run_dir/metrics.json   loss before/after on the training objects (unjittered boxes), the Dice of each
                           candidate margin, seconds, case ids
    run_dir/log.jsonl      training loss every ``log_every`` steps

:func:`~frugalseg.foundation.decoder_file.load_finetuned` puts ``decoder.pt`` on top of the base weights.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from frugalseg.atomic import append_jsonl, atomic_write_json
from frugalseg.data.case import Case
from frugalseg.errors import InputError
from frugalseg.foundation.cache import CachedSegmenter, EmbeddingCache
from frugalseg.foundation.decoder_file import DECODER_FILE, save_decoder
from frugalseg.foundation.finetune_targets import dice_bce_loss, mask_to_model_frame, object_targets
from frugalseg.foundation.litemedsam import IMAGE_SIZE, LiteMedSAMSegmenter
from frugalseg.foundation.preprocess import boxes_to_model_frame
from frugalseg.foundation.prompting import jitter_boxes
from frugalseg.foundation.prompts import Embedding
from frugalseg.foundation.zoom import zoom_crops
from frugalseg.optim import optimiser_step
from frugalseg.weights import sha256_file

__all__ = [
    "MARGIN_CANDIDATES",
    "FinetuneConfig",
    "FinetuneResult",
    "calibrate_box_margin",
    "finetune_decoder",
]

SCHEMA_VERSION = 1
MARGIN_CANDIDATES = (0.0, 2.5, 5.0, 7.5, 10.0, 12.5, 15.0)
"""The box margins (model pixels) ``--calibrate-margin`` scores."""


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig:
    """Settings of a decoder fine-tuning run (variants via ``dataclasses.replace``).

    Attributes:
        steps: optimisation steps.
        lr: AdamW learning rate (linear warm-up over the first 5% of the steps).
        weight_decay: AdamW weight decay.
        images_per_step: images whose objects make one step's loss.
        box_jitter: each box side moves by up to this fraction of the box size (0: exact boxes).
        box_margins: candidate box margins (model pixels, see :data:`~frugalseg.foundation.preprocess.BOX_MARGIN`)
            scored before training (e.g. :data:`MARGIN_CANDIDATES`); the best becomes the segmenter's. Empty (the
            default): keep the segmenter's margin.
        train_prompt_encoder: also train the prompt encoder (its Fourier matrix is a buffer and stays fixed).
        zoom: train on box-centred crops of this context (window side over the box's longest side, see
            :mod:`frugalseg.foundation.zoom`) instead of whole images; 0 (the default): whole images. The
            decoder file records it and predictions with that decoder should go through
            :func:`~frugalseg.foundation.zoom.segment_zoomed`.
        zoom_views: with ``zoom``, crops per object around jittered copies of its box (besides the exact one),
            so the decoder sees the windows a user's imprecise box makes.
        ivus: objects are the lumen and the whole vessel (lumen + wall) instead of each class.
        min_pixels: objects smaller than this are not used.
        log_every: steps between log records.
        seed: seeds the image order and the box jitter.
    """

    steps: int = 300
    lr: float = 1e-4
    weight_decay: float = 0.01
    images_per_step: int = 2
    box_jitter: float = 0.1
    box_margins: tuple[float, ...] = ()
    train_prompt_encoder: bool = False
    zoom: float = 0.0
    zoom_views: int = 3
    ivus: bool = False
    min_pixels: int = 16
    log_every: int = 10
    seed: int = 0
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        checks = {
            "steps": self.steps >= 1,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "images_per_step": self.images_per_step >= 1,
            "box_jitter": 0.0 <= self.box_jitter < 0.5,
            "box_margins": all(np.isfinite(m) and m >= 0 for m in self.box_margins),
            "zoom": self.zoom == 0 or self.zoom >= 1,
            "zoom_views": self.zoom_views >= 0,
            "min_pixels": self.min_pixels >= 1,
            "log_every": self.log_every >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise InputError(f"invalid fine-tuning setting {name}={getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FinetuneResult:
    """Where the run went, the box margin it chose and how the loss on the training objects changed."""

    run_dir: Path
    box_margin: float
    initial_loss: float
    final_loss: float
    steps: int
    seconds: float


@dataclass(frozen=True)
class _Item:
    """One training image: its embedding, object boxes (original pixels) and targets in the model frame."""

    embedding: Embedding
    boxes: np.ndarray
    targets: torch.Tensor


def _items(cases: Sequence[Case], encode: Callable[[np.ndarray], Embedding], config: FinetuneConfig) -> list[_Item]:
    items = []
    for case in cases:
        objects = object_targets(_label(case), ivus=config.ivus, min_pixels=config.min_pixels)
        if not objects:
            continue
        embedding = encode(case.image)
        boxes = [_mask_box(mask) for _, mask in objects]
        targets = torch.stack([mask_to_model_frame(mask, embedding.resized_size) for _, mask in objects])
        items.append(_Item(embedding, np.asarray(boxes, dtype=np.float64), targets))
    if not items:
        raise InputError(f"none of the {len(cases)} cases has an object of at least {config.min_pixels} pixels")
    return items


def _label(case: Case) -> np.ndarray:
    if case.label is None:
        raise InputError(f"case {case.case_id} has no label map; fine-tuning needs fully labelled images")
    return case.label


def _zoomed(cases: Sequence[Case], config: FinetuneConfig) -> list[Case]:
    """The training crops of ``cases`` around their objects' boxes (:func:`~frugalseg.foundation.zoom.zoom_crops`)."""
    crops: list[Case] = []
    for index, case in enumerate(cases):
        objects = object_targets(_label(case), ivus=config.ivus, min_pixels=config.min_pixels)
        boxes = np.array([_mask_box(mask) for _, mask in objects], dtype=np.float64).reshape(-1, 4)
        rng = np.random.default_rng([config.seed, index])
        crops += zoom_crops(
            case, boxes, context=config.zoom, views=config.zoom_views, jitter=config.box_jitter, rng=rng
        )
    return crops


def _mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The tight ``(xmin, ymin, xmax, ymax)`` box (max exclusive) of a non-empty mask."""
    rows, cols = np.nonzero(mask)
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def _item_logits(segmenter: LiteMedSAMSegmenter, item: _Item, boxes: np.ndarray) -> torch.Tensor:
    """Logits of one image's objects prompted with ``boxes`` (original pixels), at the targets' ``(N, h, w)``."""
    device = segmenter.device
    original = item.embedding.original_size
    frame_boxes = boxes_to_model_frame(boxes, original, image_size=IMAGE_SIZE, margin=segmenter.box_margin)
    low_res, _ = segmenter.model.decode(item.embedding.features.to(device), boxes=frame_boxes.to(device))
    h, w = item.targets.shape[1:]
    scale = low_res.shape[-1] / IMAGE_SIZE
    crop_h, crop_w = max(1, round(h * scale)), max(1, round(w * scale))
    logits = low_res[:, 0, :crop_h, :crop_w]
    if (crop_h, crop_w) != (h, w):
        logits = F.interpolate(logits[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    return logits


def _item_loss(segmenter: LiteMedSAMSegmenter, item: _Item, boxes: np.ndarray) -> torch.Tensor:
    """Mean loss of one image's objects prompted with ``boxes`` (original pixels)."""
    return dice_bce_loss(_item_logits(segmenter, item, boxes), item.targets.to(segmenter.device))


def _mean_dice(segmenter: LiteMedSAMSegmenter, items: Sequence[_Item]) -> float:
    """Mean hard Dice of every object of ``items`` prompted with its exact box, in the model frame."""
    scores = []
    with torch.no_grad():
        for item in items:
            masks = (_item_logits(segmenter, item, item.boxes) > 0).flatten(1).float()
            targets = item.targets.to(masks.device).flatten(1)
            overlap = 2 * (masks * targets).sum(1)
            scores.extend((overlap / (masks.sum(1) + targets.sum(1)).clamp(min=1)).tolist())
    return float(np.mean(scores))


def calibrate_box_margin(
    segmenter: LiteMedSAMSegmenter,
    cases: Sequence[Case],
    margins: Sequence[float],
    *,
    ivus: bool = False,
    cache: EmbeddingCache | None = None,
) -> dict[float, float]:
    """Score each box margin on fully labelled ``cases`` and set the best one on ``segmenter`` (ties: the smaller).

    Returns the mean object Dice of each margin (exact boxes, in the model frame); ``segmenter.box_margin`` is
    left unchanged when ``margins`` is empty.

    Raises:
        InputError: a case without a label map, or no usable object.
    """
    encode = CachedSegmenter(segmenter, cache).encode if cache is not None else segmenter.encode
    return _calibrate(segmenter, _items(cases, encode, FinetuneConfig(ivus=ivus)), margins)


def _calibrate(segmenter: LiteMedSAMSegmenter, items: Sequence[_Item], margins: Sequence[float]) -> dict[float, float]:
    original = segmenter.box_margin
    scores: dict[float, float] = {}
    try:
        for margin in sorted({float(m) for m in margins}):
            segmenter.box_margin = margin
            scores[margin] = _mean_dice(segmenter, items)
    finally:
        segmenter.box_margin = original  # also when scoring fails
    if scores:
        segmenter.box_margin = max(scores, key=lambda m: (scores[m], -m))
    return scores


def _evaluation_loss(segmenter: LiteMedSAMSegmenter, items: Sequence[_Item]) -> float:
    with torch.no_grad():
        return float(np.mean([float(_item_loss(segmenter, item, item.boxes)) for item in items]))


def _trainable(segmenter: LiteMedSAMSegmenter, config: FinetuneConfig) -> list[torch.nn.Parameter]:
    """Switch gradients on for the trained parameters only; returns them."""
    model = segmenter.model
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    modules: list[torch.nn.Module] = [model.mask_decoder]
    if config.train_prompt_encoder:
        modules.append(model.prompt_encoder)
    parameters = [p for module in modules for p in module.parameters()]
    for parameter in parameters:
        parameter.requires_grad_(True)
    return parameters


def finetune_decoder(
    segmenter: LiteMedSAMSegmenter,
    cases: Sequence[Case],
    run_dir: str | Path,
    *,
    config: FinetuneConfig = FinetuneConfig(),
    cache: EmbeddingCache | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> FinetuneResult:
    """Fine-tune ``segmenter``'s mask decoder in place on fully labelled ``cases`` and save it to ``run_dir``.

    Args:
        segmenter: the LiteMedSAM to adapt (its decoder weights change; the image encoder does not).
        cases: the k labelled images.
        run_dir: output folder (see the module docstring).
        config: the run's settings.
        cache: embedding cache for the (once per image) encoder pass.
        progress: called every ``config.log_every`` steps with ``{"step", "steps", "loss", "seconds"}``.

    Raises:
        InputError: a case without a label map, or no usable object.
    """
    run_dir = Path(run_dir)
    started = time.perf_counter()
    encode = CachedSegmenter(segmenter, cache).encode if cache is not None else segmenter.encode
    items = _items(_zoomed(cases, config) if config.zoom else cases, encode, config)
    atomic_write_json(run_dir / "config.json", config.to_dict())
    (run_dir / "log.jsonl").unlink(missing_ok=True)
    margin_dice = _calibrate(segmenter, items, config.box_margins)
    flags = [(parameter, parameter.requires_grad) for parameter in segmenter.model.parameters()]
    parameters = _trainable(segmenter, config)
    initial = _evaluation_loss(segmenter, items)
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    warmup = max(1, config.steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    rng = np.random.default_rng(config.seed)
    order: list[int] = []
    recent: list[float] = []
    segmenter.model.mask_decoder.train()
    try:
        for step in range(1, config.steps + 1):
            losses = []
            for _ in range(config.images_per_step):
                if not order:
                    order = list(rng.permutation(len(items)))
                item = items[order.pop()]
                boxes = item.boxes
                if config.box_jitter > 0:
                    boxes = jitter_boxes(boxes, item.embedding.original_size, fraction=config.box_jitter, rng=rng)
                losses.append(_item_loss(segmenter, item, boxes))
            loss = torch.stack(losses).mean()
            recent.append(optimiser_step(loss, optimizer, scheduler, what="fine-tuning", step=step))
            if step % config.log_every == 0 or step == config.steps:
                record = {"step": step, "steps": config.steps, "loss": float(np.mean(recent))}
                record["seconds"] = time.perf_counter() - started
                append_jsonl(run_dir / "log.jsonl", record)
                if progress is not None:
                    progress(record)
                recent = []
    finally:
        segmenter.model.eval()
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
    final = _evaluation_loss(segmenter, items)
    segmenter.zoom = config.zoom
    save_decoder(segmenter, run_dir, with_prompt_encoder=config.train_prompt_encoder)
    seconds = time.perf_counter() - started
    atomic_write_json(
        run_dir / "metrics.json",
        {
            "box_margin": segmenter.box_margin,
            "zoom": config.zoom,
            "margin_dice": {str(margin): dice for margin, dice in margin_dice.items()},
            "initial_loss": initial,
            "final_loss": final,
            "steps": config.steps,
            "seconds": seconds,
            "num_images": len(items),
            "num_objects": int(sum(len(item.boxes) for item in items)),
            "case_ids": [case.case_id for case in cases],
            "base_weights_sha256": segmenter.weights_sha256,
            "decoder_sha256": sha256_file(run_dir / DECODER_FILE),
        },
    )
    return FinetuneResult(
        run_dir=run_dir,
        box_margin=segmenter.box_margin,
        initial_loss=initial,
        final_loss=final,
        steps=config.steps,
        seconds=seconds,
    )
