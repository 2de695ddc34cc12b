"""Adapt LiteMedSAM to a domain: fine-tune its mask decoder (optionally its prompt encoder and the last stages of
its image encoder) on k labelled images.

With the image encoder frozen (the default) each image is encoded once (through an optional
:class:`~frugalseg.foundation.EmbeddingCache`) and every step only runs the decoder. With
``FinetuneConfig.encoder_stages`` the last stages of the encoder and its neck learn too: the activations entering
them are computed once per image, and every step runs those stages forward and back (several times slower).

Each step draws ``images_per_step`` images (:mod:`frugalseg.foundation.finetune_items`); every object of an
image (an 8-connected component of a class, see :func:`~frugalseg.foundation.finetune_targets.object_targets`) is
prompted with its ground-truth box jittered by up to ``box_jitter`` of its size
(:func:`~frugalseg.foundation.prompting.jitter_boxes`). The loss
(:func:`~frugalseg.foundation.finetune_targets.dice_bce_loss`) compares the decoder's low-resolution logits,
cropped to the image inside the 256x256 frame, with the object's mask resized to that frame. AdamW with a
constant learning rate after a short warm-up.

With ``FinetuneConfig.box_margins`` the box margin is calibrated first (:func:`calibrate_box_margin`): how far
a box prompt is widened moves the outline (on HC18, whose ellipses trace the skull's outer edge, wider boxes
help; on PH2, whose masks follow the pigment, they hurt), so each candidate is scored on the k images with their
exact boxes and the best one is kept, for the fine-tuning and for prediction.

With ``FinetuneConfig.zoom`` the decoder learns from box-centred crops (:mod:`frugalseg.foundation.zoom`), each
object once around its exact box and ``zoom_views`` times around jittered copies, so it outlines objects on
the finer grid a crop gives; predict with :func:`~frugalseg.foundation.zoom.segment_zoomed` at the same context.

A segmenter whose encoder was trained takes the fingerprint of its new encoder as its ``weights_sha256``, so its
embeddings never mix with the base model's in a cache.

Run directory::

    run_dir/config.json    the FinetuneConfig (frozen, with schema version)
    run_dir/decoder.pt     {"format", "base_model_id", "base_weights_sha256", "box_margin", "zoom",
                            "fit_boxes" (False), "mask_decoder": state_dict, "prompt_encoder", "image_encoder":
                            state_dicts (only when trained)}
    run_dir/metrics.json   loss before/after on the training objects (unjittered boxes), the Dice of each
                           candidate margin, seconds, case ids
    run_dir/log.jsonl      training loss every ``log_every`` steps

:func:`~frugalseg.foundation.decoder_file.load_finetuned` puts ``decoder.pt`` on top of the base weights.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from frugalseg.atomic import append_jsonl, atomic_write_json
from frugalseg.data.case import Case
from frugalseg.errors import InputError
from frugalseg.foundation.cache import CachedSegmenter, EmbeddingCache
from frugalseg.foundation.decoder_file import DECODER_FILE, save_decoder
from frugalseg.foundation.finetune_items import (
    TrainingItem,
    item_logits,
    item_loss,
    training_items,
    zoomed_cases,
)
from frugalseg.foundation.litemedsam import LiteMedSAMSegmenter
from frugalseg.foundation.prompting import jitter_boxes
from frugalseg.foundation.prompts import Embedding
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
ENCODER_STAGES = 4
"""Stages of LiteMedSAM's TinyViT image encoder (``FinetuneConfig.encoder_stages`` trains the last few)."""
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
        encoder_stages: also train the last this many of the image encoder's 4 stages and its neck (0: frozen
            encoder); its batch norms keep their running statistics.
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
    encoder_stages: int = 0
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
            "encoder_stages": 0 <= self.encoder_stages <= ENCODER_STAGES,
            "min_pixels": self.min_pixels >= 1,
            "log_every": self.log_every >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise InputError(f"invalid fine-tuning setting {name}={getattr(self, name)!r}")

    @property
    def entry_stage(self) -> int | None:
        """The first trained image-encoder stage (``None``: a frozen encoder)."""
        return ENCODER_STAGES - self.encoder_stages if self.encoder_stages else None

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


def _mean_dice(segmenter: LiteMedSAMSegmenter, items: Sequence[TrainingItem]) -> float:
    """Mean hard Dice of every object of ``items`` prompted with its exact box, in the model frame."""
    scores = []
    with torch.no_grad():
        for item in items:
            masks = (item_logits(segmenter, item, item.boxes) > 0).flatten(1).float()
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
    items = training_items(cases, encode, ivus=ivus, min_pixels=FinetuneConfig.min_pixels)
    return _calibrate(segmenter, items, margins)


def _calibrate(
    segmenter: LiteMedSAMSegmenter, items: Sequence[TrainingItem], margins: Sequence[float]
) -> dict[float, float]:
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


def _evaluation_loss(segmenter: LiteMedSAMSegmenter, items: Sequence[TrainingItem]) -> float:
    with torch.no_grad():
        return float(np.mean([float(item_loss(segmenter, item, item.boxes)) for item in items]))


def _trainable(segmenter: LiteMedSAMSegmenter, config: FinetuneConfig) -> list[torch.nn.Parameter]:
    """Switch gradients on for the trained parameters only; returns them."""
    model = segmenter.model
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    modules: list[torch.nn.Module] = [model.mask_decoder]
    if config.train_prompt_encoder:
        modules.append(model.prompt_encoder)
    if config.entry_stage is not None:
        encoder = model.image_encoder
        modules += [*encoder.layers[config.entry_stage :], encoder.neck]
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
        segmenter: the LiteMedSAM to adapt (its decoder weights change, and with ``config.encoder_stages`` the
            last encoder stages, after which it identifies itself by its encoder's fingerprint).
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
    encode: Callable[[np.ndarray], Embedding]
    if config.entry_stage is not None:
        encode = functools.partial(segmenter.encode_to_stage, stage=config.entry_stage)
    else:
        encode = CachedSegmenter(segmenter, cache).encode if cache is not None else segmenter.encode
    shown = cases
    if config.zoom:
        shown = zoomed_cases(
            cases,
            context=config.zoom,
            views=config.zoom_views,
            jitter=config.box_jitter,
            ivus=config.ivus,
            min_pixels=config.min_pixels,
            seed=config.seed,
        )
    items = training_items(
        shown, encode, ivus=config.ivus, min_pixels=config.min_pixels, entry_stage=config.entry_stage
    )
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
                losses.append(item_loss(segmenter, item, boxes))
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
    segmenter.fit_boxes = False  # the decoder learned how far a box's mask reaches
    save_decoder(
        segmenter,
        run_dir,
        with_prompt_encoder=config.train_prompt_encoder,
        with_image_encoder=config.encoder_stages > 0,
    )
    base_weights = segmenter.weights_sha256
    if config.encoder_stages:
        segmenter.identify_by_encoder()
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
            "base_weights_sha256": base_weights,
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
