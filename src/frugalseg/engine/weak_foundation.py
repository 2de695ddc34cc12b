"""Pseudo-masks from a promptable foundation model for weakly supervised training (``boxes`` / ``litemedsam``).

Each training image is prompted with its boxes at its original resolution through
:func:`~frugalseg.foundation.pseudolabel.pseudolabel_case` (one object per box; confidence = predicted IoU x
stability under box jitter; an object below its default floor of 0.5 is left unlabelled inside its box), and the
label map is resized to the training size. The default segmenter is LiteMedSAM with its real weights
(``frugalseg weights fetch litemedsam``), its embeddings cached under ``<cache>/embeddings``
(:func:`frugalseg.weights.cache_dir`; keyed by image content, model, weights and package version), so a second
run over the same images costs only the decoder.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from frugalseg.annotations import Boxes
from frugalseg.data.case import Case
from frugalseg.engine.preprocess import label_to_tensor
from frugalseg.engine.weak_labels import case_rng
from frugalseg.errors import InputError
from frugalseg.foundation import CachedSegmenter, EmbeddingCache, LiteMedSAMSegmenter, PromptableSegmenter
from frugalseg.foundation.prompting import prompts_from_boxes
from frugalseg.foundation.pseudolabel import pseudolabel_case
from frugalseg.weights import cache_dir

__all__ = ["default_segmenter", "foundation_box_labels"]


def default_segmenter() -> PromptableSegmenter:
    """LiteMedSAM with the cached real weights, behind the on-disk embedding cache.

    Raises:
        InputError: the weights are not cached (the message names ``frugalseg weights fetch litemedsam``).
    """
    return CachedSegmenter(LiteMedSAMSegmenter.from_cache(), EmbeddingCache(cache_dir() / "embeddings"))


def foundation_box_labels(
    cases: Sequence[Case],
    boxes: Sequence[Boxes],
    *,
    size: int,
    num_classes: int,
    seed: int = 0,
    segmenter: PromptableSegmenter | None = None,
) -> torch.Tensor:
    """Pseudo label maps of ``cases`` from their boxes, at the training size (``IGNORE`` where dropped).

    Args:
        cases: the images (original resolution).
        boxes: the boxes of each case, in the order of ``cases``.
        size: training side in pixels.
        num_classes: classes including background (a box label outside it is refused).
        seed: seeds the box jitter of the stability estimate, per case id.
        segmenter: the promptable model (default: :func:`default_segmenter`).

    Returns:
        ``(N, size, size)`` int64.

    Raises:
        InputError: a case without boxes, or a box of an unknown class (the message names the case).
    """
    segmenter = segmenter if segmenter is not None else default_segmenter()
    labels = torch.empty((len(cases), size, size), dtype=torch.long)
    for i, (case, case_boxes) in enumerate(zip(cases, boxes, strict=True)):
        unknown = sorted({box.label for box in case_boxes.boxes} - set(range(1, num_classes)))
        if unknown:
            raise InputError(f"case {case.case_id}: boxes of unknown classes {unknown}")
        try:
            objects = prompts_from_boxes(case_boxes, case.shape)
        except InputError as error:
            raise InputError(f"case {case.case_id}: {error}") from None
        label, _ = pseudolabel_case(segmenter, case.image, objects, rng=case_rng(seed, case.case_id))
        labels[i] = label_to_tensor(label, size=size, num_classes=num_classes)
    return labels
