"""``frugalseg bench foundation``: a promptable foundation model (LiteMedSAM) on a labelled dataset.

On the held-out split (:func:`frugalseg.engine.bench.held_out_split`), prompts simulated from the ground truth:

* ``zero_shot.box``: the tight box of each object (8-connected component of a class);
* ``zero_shot.box_jitter``: the same boxes with each side moved by up to ``BOX_JITTER`` (10%) of the box size;
* ``zero_shot.points``: one interior click per class, points only;
* ``zero_shot.points_box``: three interior clicks per class, the padded box around them plus the clicks;
* ``finetuned`` (``finetune_k > 0``): ``box`` and ``box_jitter`` again after fine-tuning the mask decoder on
  ``finetune_k`` training images (:mod:`frugalseg.foundation.finetune`); with ``zoom``, trained on and
  predicting from box-centred crops (:mod:`frugalseg.foundation.zoom`), the crop centred on the given box.

On the training split: ``pseudo``, the Dice of pseudo-masks made from tight boxes
(:func:`~frugalseg.foundation.pseudolabel.pseudolabel_dataset`, with its confidence filter) against the ground
truth; ``student`` (``student=True``, :mod:`frugalseg.engine.foundation_student`), the held-out Dice of a
network trained by :func:`frugalseg.engine.train.train` on those pseudo-masks, and ``fraction_of_full``, its
ratio to the same network trained on the full masks of the same images.

Dice and the other scores are those of :func:`frugalseg.metrics.case_metrics` averaged by
:func:`frugalseg.metrics.summarise` (``mean`` over foreground classes of per-class means), the same as
``frugalseg evaluate``. IVUS datasets (classes background, lumen, vessel_wall) are prompted with lumen and
vessel boxes (wall = vessel minus lumen).

``timing``: ``encode_s`` (image encoder, seconds per image, uncached), ``decode_s`` (seconds per prompted
object), ``cached_encode_s`` (an embedding-cache hit), and a whole pass (encode + decode of the box prompts)
with and without the cache; ``peak_rss_mb`` is the process's peak resident memory (``getrusage``).
"""

from __future__ import annotations

import copy
import dataclasses
import platform
import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from frugalseg.annotations import Boxes, simulate_boxes, simulate_points
from frugalseg.atomic import atomic_write_json
from frugalseg.data.case import IGNORE, Case, Dataset
from frugalseg.engine.bench import evenly_spaced, held_out_split
from frugalseg.engine.config import TrainConfig
from frugalseg.engine.evaluate import IVUS_CLASSES
from frugalseg.engine.foundation_student import bench_student, pseudo_scores
from frugalseg.errors import InputError
from frugalseg.foundation import CachedSegmenter, EmbeddingCache, LiteMedSAMSegmenter, PromptableSegmenter
from frugalseg.foundation.finetune import MARGIN_CANDIDATES, FinetuneConfig, finetune_decoder
from frugalseg.foundation.prompting import ObjectPrompts, ivus_prompts, prompts_from_boxes, prompts_from_points
from frugalseg.foundation.prompts import Embedding
from frugalseg.foundation.pseudolabel import load_pseudolabels, pseudolabel_dataset
from frugalseg.foundation.pseudomask import combine_by_class
from frugalseg.foundation.zoom import image_embedding, predict_on_image
from frugalseg.metrics import case_metrics, summarise

__all__ = ["BOX_JITTER", "VARIANTS", "bench_foundation", "box_annotation", "prompt_variants"]

BOX_JITTER = 0.1
VARIANTS = ("box", "box_jitter", "points", "points_box")
QUICK_MAX_TEST = 8
QUICK_MAX_PSEUDO = 16


def box_annotation(
    label: np.ndarray, *, ivus: bool, jitter: float = 0.0, rng: np.random.Generator | None = None
) -> Boxes:
    """Simulated box annotation of a labelled image: one box per object (8-connected component of a class).

    IVUS: one lumen box (class 1) and one vessel box (class 2, around lumen and wall), per class. ``jitter``
    moves each side by up to that fraction of the box size (:func:`~frugalseg.annotations.simulate_boxes`).

    Shape:
        label: ``(H, W)``; ``IGNORE`` pixels belong to no object.
    """
    clean = np.where(label == IGNORE, 0, label).astype(np.uint8)
    if not ivus:
        return simulate_boxes(clean, jitter=jitter, rng=rng)
    lumen = (clean == 1).astype(np.uint8)
    vessel = (clean > 0).astype(np.uint8) * 2
    boxes = simulate_boxes(lumen, per="class", jitter=jitter, rng=rng).boxes
    return Boxes(boxes + simulate_boxes(vessel, per="class", jitter=jitter, rng=rng).boxes)


def prompt_variants(label: np.ndarray, *, ivus: bool, rng: np.random.Generator) -> dict[str, ObjectPrompts | None]:
    """The simulated prompts of one labelled image, by variant name (``None`` when the image has no object).

    Shape:
        label: ``(H, W)`` with ``IGNORE`` for unlabelled pixels (they belong to no object).
    """
    clean = np.where(label == IGNORE, 0, label).astype(np.uint8)
    size = (int(label.shape[0]), int(label.shape[1]))
    if not clean.any():
        return dict.fromkeys(VARIANTS)
    to_prompts = ivus_prompts if ivus else prompts_from_boxes
    one = simulate_points(clean, points_per_object=1, negatives=0, per="class", rng=rng)
    three = simulate_points(clean, points_per_object=3, negatives=0, per="class", rng=rng)
    return {
        "box": to_prompts(box_annotation(clean, ivus=ivus), size),
        "box_jitter": to_prompts(box_annotation(clean, ivus=ivus, jitter=BOX_JITTER, rng=rng), size),
        "points": prompts_from_points(one, size, mode="points", other_classes_negative=not ivus),
        "points_box": prompts_from_points(three, size, mode="box", other_classes_negative=not ivus),
    }


def _predict_label(
    segmenter: PromptableSegmenter,
    image: np.ndarray,
    objects: ObjectPrompts | None,
    *,
    ivus: bool,
    embedding: Embedding | None = None,
    encode: Callable[[np.ndarray], Embedding] | None = None,
) -> tuple[np.ndarray, float]:
    """Label map from the prompts (all objects kept; :func:`~frugalseg.foundation.zoom.predict_on_image`) and
    the prediction seconds (decoding only, given an ``embedding``)."""
    if objects is None:
        return np.zeros(np.shape(image)[:2], dtype=np.uint8), 0.0
    started = time.perf_counter()
    prediction = predict_on_image(segmenter, image, objects.prompts, embedding=embedding, encode=encode)
    seconds = time.perf_counter() - started
    keep = np.ones(objects.num_objects, dtype=bool)
    return combine_by_class(prediction, objects.classes, keep=keep, ivus=ivus), seconds


def _metrics(label: np.ndarray, case: Case, dataset: Dataset) -> dict[str, Any]:
    assert case.label is not None
    return case_metrics(
        label, case.label, num_classes=dataset.num_classes, spacing=case.spacing, class_names=dataset.class_names
    )


def _summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    report = summarise(rows)
    return {"dice": report["mean"]["dice"], **report}


def _zero_shot(
    segmenter: PromptableSegmenter,
    dataset: Dataset,
    cases: Sequence[Case],
    cache: EmbeddingCache,
    *,
    ivus: bool,
    seed: int,
    log: Callable[[str], Any],
) -> tuple[dict[str, Any], dict[str, float]]:
    """Zero-shot scores by prompt variant, and encoder/decoder timings (embeddings go into ``cache``)."""
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    encode_times, decode_times, objects = [], [], 0
    box_prompts: list[ObjectPrompts | None] = []
    cached = CachedSegmenter(segmenter, cache)
    for index, case in enumerate(cases):
        assert case.label is not None
        started = time.perf_counter()
        embedding = segmenter.encode(case.image)
        encode_times.append(time.perf_counter() - started)
        cache.save(cached.key(case.image), embedding)
        variants = prompt_variants(case.label, ivus=ivus, rng=np.random.default_rng([seed, index]))
        box_prompts.append(variants["box"])
        for name, prompts in variants.items():
            label, seconds = _predict_label(segmenter, case.image, prompts, ivus=ivus, embedding=embedding)
            if name == "box" and prompts is not None:
                decode_times.append(seconds)
                objects += prompts.num_objects
            rows[name].append(_metrics(label, case, dataset))
        log(f"zero-shot {index + 1}/{len(cases)}: box Dice {rows['box'][-1]['mean']['dice']:.4f}")
    cached_encode_times, cached_decode_times = [], []
    for case, prompts in zip(cases, box_prompts, strict=True):
        started = time.perf_counter()
        embedding = cached.encode(case.image)
        cached_encode_times.append(time.perf_counter() - started)
        cached_decode_times.append(_predict_label(segmenter, case.image, prompts, ivus=ivus, embedding=embedding)[1])
    uncached_pass = float(np.sum(encode_times) + np.sum(decode_times)) / len(cases)
    cached_pass = float(np.sum(cached_encode_times) + np.sum(cached_decode_times)) / len(cases)
    cached_encode = float(np.mean(cached_encode_times))
    timing = {
        "encode_s": float(np.mean(encode_times)),
        "encode_s_median": float(np.median(encode_times)),
        "decode_s": float(np.sum(decode_times) / max(1, objects)),
        "cached_encode_s": cached_encode,
        "encode_speedup": float(np.mean(encode_times)) / max(cached_encode, 1e-9),
        "uncached_pass_s": uncached_pass,
        "cached_pass_s": cached_pass,
        "pass_speedup": uncached_pass / max(cached_pass, 1e-9),
        "threads": torch.get_num_threads(),
    }
    return {name: _summary(variant_rows) for name, variant_rows in rows.items()}, timing


def bench_foundation(
    dataset: Dataset,
    json_path: str | Path,
    *,
    quick: bool = False,
    max_cases: int | None = None,
    max_pseudo: int | None = None,
    seed: int = 0,
    segmenter: PromptableSegmenter | None = None,
    embedding_cache: str | Path | None = None,
    finetune_k: int = 0,
    finetune_config: FinetuneConfig | None = None,
    calibrate_margin: bool = False,
    zoom: float = 0.0,
    encoder_stages: int = 0,
    student: bool = False,
    student_config: TrainConfig | None = None,
    log: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Benchmark a promptable segmenter on ``dataset`` and write the report to ``json_path`` (see module doc).

    Args:
        dataset: a labelled dataset.
        json_path: the report; ``<stem>-pseudo/`` (pseudo-masks, resumable), ``<stem>-finetune/`` and
            ``<stem>-student/`` are written beside it.
        quick: at most 8 held-out and 16 pseudo-labelled images, 3-epoch students.
        max_cases: at most this many held-out images and as many pseudo-labelled ones, spread evenly over each
            list (:func:`~frugalseg.engine.bench.evenly_spaced`).
        max_pseudo: at most this many pseudo-labelled images (default: as ``max_cases``).
        seed: seeds the split, the simulated prompts and the trainings.
        segmenter: the model (default: the cached LiteMedSAM weights).
        embedding_cache: embedding cache folder (default: a temporary folder, removed at the end).
        finetune_k: fine-tune the decoder on this many training images and score again (0: skip).
        finetune_config: settings of that fine-tuning (default: ``FinetuneConfig`` with ``seed``).
        calibrate_margin: the default fine-tuning first calibrates the box margin (:data:`MARGIN_CANDIDATES`).
        zoom: the default fine-tuning learns from box-centred crops of this context, and the fine-tuned
            decoder is scored on them (:mod:`frugalseg.foundation.zoom`; 0: whole images).
        encoder_stages: the default fine-tuning also trains the last this many image-encoder stages.
        student: train the pseudo-mask student and the fully supervised reference (slow).
        student_config: their training settings (default ``TrainConfig(seed=seed)``, 3 epochs when quick).
        log: progress lines.

    Raises:
        InputError: the dataset has no labelled held-out or training image.
    """
    json_path = Path(json_path)
    started = time.perf_counter()
    train_cases, test_cases = held_out_split(dataset, seed=seed)
    limit_test = min(QUICK_MAX_TEST, max_cases or QUICK_MAX_TEST) if quick else max_cases
    limit_pseudo = max_pseudo if max_pseudo is not None else max_cases
    limit_pseudo = min(QUICK_MAX_PSEUDO, limit_pseudo or QUICK_MAX_PSEUDO) if quick else limit_pseudo
    test_cases, train_cases = evenly_spaced(test_cases, limit_test), evenly_spaced(train_cases, limit_pseudo)
    if not test_cases or not train_cases:
        raise InputError(f"{dataset.root}: need labelled training and held-out images for the foundation benchmark")
    ivus = list(dataset.class_names) == IVUS_CLASSES
    segmenter = segmenter if segmenter is not None else LiteMedSAMSegmenter.from_cache()
    stem = json_path.with_suffix("")
    with tempfile.TemporaryDirectory(prefix="frugalseg-embeddings-") as scratch:
        cache = EmbeddingCache(embedding_cache if embedding_cache is not None else scratch)
        log(f"zero-shot on {len(test_cases)} held-out images")
        zero_shot, timing = _zero_shot(segmenter, dataset, test_cases, cache, ivus=ivus, seed=seed, log=log)
        cached = CachedSegmenter(segmenter, cache)
        finetuned: dict[str, Any] | None = None
        if finetune_k > 0:
            margins = MARGIN_CANDIDATES if calibrate_margin else ()
            tuning = finetune_config or FinetuneConfig(
                seed=seed, ivus=ivus, box_margins=margins, zoom=zoom, encoder_stages=encoder_stages
            )
            finetuned = _finetuned(
                segmenter, dataset, train_cases, test_cases, cache, stem, finetune_k, ivus, seed, tuning, log
            )
        log(f"pseudo-masks from tight boxes on {len(train_cases)} training images")
        pseudo_dir = Path(f"{stem}-pseudo")
        boxes = {case.case_id: box_annotation(case.label, ivus=ivus) for case in train_cases if case.label is not None}
        report = pseudolabel_dataset(
            cached,
            train_cases,
            boxes,
            out_dir=pseudo_dir,
            ivus=ivus,
            seed=seed,
        )
        pseudo_cases = load_pseudolabels(train_cases, pseudo_dir)
        pseudo = {
            **pseudo_scores(train_cases, pseudo_cases),
            "num_cases": len(report.written) + len(report.skipped),
            "out_dir": str(pseudo_dir),
        }
    student_report: dict[str, Any] = {"dice": None, "fraction_of_full": None, "skipped": "run with student=True"}
    if student:
        config = student_config or TrainConfig(seed=seed)
        if quick:
            config = dataclasses.replace(config, epochs=3)
        student_report = bench_student(
            dataset, train_cases, test_cases, pseudo_cases, Path(f"{stem}-student"), config=config, log=log
        )
    timing["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    output = {
        "benchmark": "foundation",
        "dataset": {"root": dataset.root, "format": dataset.source_format, "classes": dataset.class_names},
        "model_id": segmenter.model_id,
        "weights_sha256": segmenter.weights_sha256,
        "fit_boxes": getattr(segmenter, "fit_boxes", None),
        "shape": getattr(segmenter, "shape", None),
        "box_slack": list(getattr(segmenter, "box_slack", ())),
        "box_snap": list(getattr(segmenter, "box_snap", ())),
        "box_widen": getattr(segmenter, "box_widen", None),
        "num_test": len(test_cases),
        "num_pseudo": len(train_cases),
        "ivus": ivus,
        "box_jitter": BOX_JITTER,
        "zero_shot": zero_shot,
        "finetuned": finetuned,
        "pseudo": pseudo,
        "student": student_report,
        "timing": timing,
        "machine": {"threads": torch.get_num_threads(), "platform": platform.platform()},
        "total_seconds": time.perf_counter() - started,
    }
    atomic_write_json(json_path, output)
    return output


def _finetuned(
    segmenter: PromptableSegmenter,
    dataset: Dataset,
    train_cases: Sequence[Case],
    test_cases: Sequence[Case],
    cache: EmbeddingCache,
    stem: Path,
    k: int,
    ivus: bool,
    seed: int,
    config: FinetuneConfig,
    log: Callable[[str], Any],
) -> dict[str, Any]:
    """Fine-tune a copy of the decoder on ``k`` training images, then score box and jittered-box prompts."""
    if not isinstance(segmenter, LiteMedSAMSegmenter):
        raise InputError(f"fine-tuning needs the LiteMedSAM backend, not {segmenter.model_id}")
    tuned = LiteMedSAMSegmenter(
        copy.deepcopy(segmenter.model), weights_sha256=segmenter.weights_sha256, box_margin=segmenter.box_margin
    )
    chosen = [train_cases[i] for i in np.random.default_rng(seed).permutation(len(train_cases))[:k]]
    log(f"fine-tuning the decoder on {len(chosen)} training images ({config.steps} steps)")
    result = finetune_decoder(tuned, chosen, Path(f"{stem}-finetune"), config=config, cache=cache)
    cached = CachedSegmenter(tuned, cache)
    rows: dict[str, list[dict[str, Any]]] = {"box": [], "box_jitter": []}
    for index, case in enumerate(test_cases):
        assert case.label is not None
        embedding = image_embedding(tuned, case.image, encode=cached.encode)
        variants = prompt_variants(case.label, ivus=ivus, rng=np.random.default_rng([seed, index]))
        for name in rows:
            label, _ = _predict_label(
                tuned, case.image, variants[name], ivus=ivus, embedding=embedding, encode=cached.encode
            )
            rows[name].append(_metrics(label, case, dataset))
    return {
        "k": len(chosen),
        "case_ids": [case.case_id for case in chosen],
        "run_dir": str(result.run_dir),
        "box_margin": result.box_margin,
        "zoom": tuned.zoom,
        "encoder_stages": config.encoder_stages,
        "initial_loss": result.initial_loss,
        "final_loss": result.final_loss,
        "train_seconds": result.seconds,
        **{name: _summary(variant_rows) for name, variant_rows in rows.items()},
    }
