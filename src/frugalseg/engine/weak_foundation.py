"""Pseudo-masks from a promptable foundation model for weakly supervised training (method ``litemedsam``).

``boxes``: each training image is prompted with its boxes at its original resolution through
:func:`~frugalseg.foundation.pseudomask.pseudolabel_case` (one object per box; confidence = predicted IoU x
stability under box jitter; an object below its default floor of 0.5 is left unlabelled inside its box), and the
label map is resized to the training size. The default segmenter is LiteMedSAM with its real weights
(``frugalseg weights fetch litemedsam``), its embeddings cached under ``<cache>/embeddings``
(:func:`frugalseg.weights.cache_dir`; keyed by image content, model, weights and package version), so a second
run over the same images costs only the decoder.

``tags`` and ``scribbles``: the annotation does not say how far each object extends, so the boxes come from
a coarse label map at the training size (:func:`boxes_from_label_maps`, :func:`foundation_region_labels`).
Tags: first the thresholded class activation maps, then, in every refinement round, the trained network's own
prediction restricted to the tagged classes; each tagged class is prompted with the box of its largest region.
Scribbles (``litemedsam``): a network is first trained on the strokes (partial CE), then each refinement round
prompts every predicted region that holds a stroke of its class with its box. Scribbles
(``random_walker_litemedsam``): every random-walker region that holds a stroke of its class is prompted with its
box widened by ``walker_box_margin`` of its side on each side, once, before training: a walker grown from
strokes stops short of the outline at the first strong edge (on usgra training images its regions' boxes cover
about 0.6 of the true boxes' area), and a box that cuts the object off truncates the mask, while LiteMedSAM,
trained on boxes perturbed by up to 20 pixels (MedSAM, Ma et al., Nature Communications 2024), tolerates a
loose one. In both, stroked pixels keep the expert's class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage

from frugalseg.annotations import Boxes
from frugalseg.data.case import IGNORE, Box, Case
from frugalseg.engine.preprocess import label_to_tensor
from frugalseg.engine.weak_labels import case_rng
from frugalseg.errors import InputError
from frugalseg.foundation import CachedSegmenter, EmbeddingCache, LiteMedSAMSegmenter, PromptableSegmenter
from frugalseg.foundation.prompting import prompts_from_boxes
from frugalseg.foundation.pseudomask import pseudolabel_case
from frugalseg.weights import cache_dir

__all__ = [
    "box_pseudo_mask",
    "boxes_from_label_maps",
    "default_segmenter",
    "foundation_box_labels",
    "foundation_region_labels",
]


def default_segmenter(*, fit_boxes: bool = False) -> PromptableSegmenter:
    """LiteMedSAM with the cached real weights, behind the on-disk embedding cache; ``fit_boxes``: fit tight
    boxes (:mod:`frugalseg.foundation.box_fit`).

    Raises:
        InputError: the weights are not cached (the message names ``frugalseg weights fetch litemedsam``).
    """
    segmenter = LiteMedSAMSegmenter.from_cache()
    segmenter.fit_boxes = fit_boxes
    return CachedSegmenter(segmenter, EmbeddingCache(cache_dir() / "embeddings"))


def box_pseudo_mask(
    case: Case, boxes: Boxes, segmenter: PromptableSegmenter, *, seed: int = 0, ivus: bool = False, tight: bool = True
) -> np.ndarray:
    """The foundation model's label map of one case from its boxes, at the image's size.

    Through :func:`~frugalseg.foundation.pseudomask.pseudolabel_case` (an object below its confidence floor is
    ``IGNORE``; ``ivus``: the vessel-wall box prompts the vessel, wall = vessel minus lumen), the box jitter of
    the stability estimate seeded by ``seed`` and the case id.

    Shape:
        returns ``(H, W)`` uint8.

    Raises:
        InputError: the case has no box (the message names the case).
    """
    try:
        objects = prompts_from_boxes(boxes, case.shape, tight=tight)
    except InputError as error:
        raise InputError(f"case {case.case_id}: {error}") from None
    label, _ = pseudolabel_case(segmenter, case.image, objects, ivus=ivus, rng=case_rng(seed, case.case_id))
    return label


def foundation_box_labels(
    cases: Sequence[Case],
    boxes: Sequence[Boxes],
    *,
    size: int,
    num_classes: int,
    seed: int = 0,
    segmenter: PromptableSegmenter | None = None,
    tight: bool = True,
) -> torch.Tensor:
    """Pseudo label maps of ``cases`` from their boxes, at the training size (``IGNORE`` where dropped).

    Args:
        cases: the images (original resolution).
        boxes: the boxes of each case, in the order of ``cases``.
        size: training side in pixels.
        num_classes: classes including background (a box label outside it is refused).
        seed: seeds the box jitter of the stability estimate, per case id.
        segmenter: the promptable model (default: :func:`default_segmenter`).
        tight: the boxes are annotations touching their objects (:attr:`~frugalseg.foundation.Prompts.tight_boxes`).

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
        label = box_pseudo_mask(case, case_boxes, segmenter, seed=seed, tight=tight)
        labels[i] = label_to_tensor(label, size=size, num_classes=num_classes)
    return labels


def boxes_from_label_maps(
    labels: torch.Tensor,
    cases: Sequence[Case],
    *,
    classes: torch.Tensor | None = None,
    seeds: torch.Tensor | None = None,
    margin: float = 0.0,
) -> list[Boxes]:
    """Boxes, in each case's own pixels, of the regions of coarse label maps at the training size.

    With ``classes`` (tags): the largest 8-connected region of each listed foreground class. With ``seeds``
    (scribbles at the same size): for each class scribbled in the image, every 8-connected region of
    ``(labels == c) | (seeds == c)`` that holds a stroke of ``c``, so each scribbled object gets a box even
    where the prediction missed it. The maps are the cases resized (stretched) to a square, so a box scales
    by ``W / S`` across and ``H / S`` down. Each box grows by ``margin`` times its side on every side, clipped
    to the image. A class without a region gets no box.

    Shape:
        ``labels (N, S, S)`` int64 (``IGNORE`` counts as no class); ``classes (N, C)`` bool (column 0, the
        background, is never boxed) or ``seeds (N, S, S)`` int64 -> ``N`` :class:`~frugalseg.annotations.Boxes`.
    """
    if (classes is None) == (seeds is None):
        raise ValueError("boxes_from_label_maps: give exactly one of classes and seeds")
    size = int(labels.shape[-1])
    out = []
    for i, case in enumerate(cases):
        label = labels[i].numpy()
        strokes = None if seeds is None else seeds[i].numpy()
        if strokes is None:
            assert classes is not None
            wanted = [int(c) for c in np.flatnonzero(classes[i, 1:].numpy()) + 1]
        else:
            wanted = [int(c) for c in np.unique(strokes) if c not in (0, IGNORE)]
        height, width = case.shape
        boxes = []
        for c in wanted:
            region = label == c if strokes is None else (label == c) | (strokes == c)
            regions, count = ndimage.label(region, structure=np.ones((3, 3), dtype=bool))
            if count == 0:
                continue
            if strokes is None:
                picked = [1 + int(np.argmax(np.bincount(regions.ravel())[1:]))]
            else:
                picked = [int(r) for r in np.unique(regions[strokes == c])]
            slices = ndimage.find_objects(regions)
            for index in picked:
                rows, cols = slices[index - 1]
                grow_x, grow_y = margin * (cols.stop - cols.start), margin * (rows.stop - rows.start)
                boxes.append(
                    Box(
                        xmin=max(cols.start - grow_x, 0) * width / size,
                        ymin=max(rows.start - grow_y, 0) * height / size,
                        xmax=min(cols.stop + grow_x, size) * width / size,
                        ymax=min(rows.stop + grow_y, size) * height / size,
                        label=c,
                    )
                )
        out.append(Boxes(tuple(boxes)))
    return out


def foundation_region_labels(
    cases: Sequence[Case],
    coarse: torch.Tensor,
    *,
    classes: torch.Tensor | None = None,
    seeds: torch.Tensor | None = None,
    num_classes: int,
    seed: int = 0,
    segmenter: PromptableSegmenter | None = None,
    margin: float = 0.0,
) -> torch.Tensor:
    """Pseudo label maps of ``cases`` from the boxes of a coarse label map (see the module docstring).

    Args:
        cases: the images (original resolution).
        coarse: a label map per case at the training size (CAM pseudo-masks or a network's prediction).
        classes: tags: the classes each case holds; a tagged class no region locates leaves the image's
            background unknown (``IGNORE``), as it may hide there.
        seeds: scribbles at the training size; stroked pixels keep their stroke's class in the result.
        num_classes: classes including background.
        seed: seeds the box jitter of the stability estimate, per case id.
        segmenter: the promptable model (default: :func:`default_segmenter`).
        margin: each box grows by this fraction of its side on every side (:func:`boxes_from_label_maps`).

    Shape:
        ``coarse (N, S, S)`` int64, ``classes (N, num_classes)`` bool or ``seeds (N, S, S)`` -> ``(N, S, S)`` int64.
    """
    boxes = boxes_from_label_maps(coarse, cases, classes=classes, seeds=seeds, margin=margin)
    labels = torch.full(coarse.shape, IGNORE, dtype=torch.long)
    boxed = [i for i, case_boxes in enumerate(boxes) if len(case_boxes)]
    if boxed:
        labels[boxed] = foundation_box_labels(
            [cases[i] for i in boxed],
            [boxes[i] for i in boxed],
            size=int(coarse.shape[-1]),
            num_classes=num_classes,
            seed=seed,
            segmenter=segmenter,
            tight=False,
        )
    if classes is not None:
        for i, case_boxes in enumerate(boxes):
            located = {box.label for box in case_boxes.boxes}
            if any(int(c) not in located for c in np.flatnonzero(classes[i, 1:].numpy()) + 1):
                labels[i][labels[i] == 0] = IGNORE
    if seeds is not None:
        labels = torch.where(seeds != IGNORE, seeds, labels)
    return labels
