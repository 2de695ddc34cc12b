"""Where weak labels come from (simulated, carried by the dataset, read from files) and how they become targets.

:func:`weak_annotations` gathers one annotation per case for the configured kind; :func:`build_weak_targets`
turns them into :class:`~frugalseg.engine.weak_targets.WeakTargets` at the training size, running the
configured pseudo-label generator (random walker, region growing, CAM) on the resized images first, or, for
boxes with ``litemedsam``, a promptable foundation model on the original images
(:mod:`frugalseg.engine.weak_foundation`).
Pseudo-labels are computed at the training size: they are only ever used there, and the random walker is
then fast enough for thousands of images on a CPU.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import torch
import torch.nn.functional as F

from frugalseg.annotations import (
    Annotation,
    Boxes,
    PartialLabels,
    Points,
    Scribbles,
    Tags,
    points_to_label_map,
    read_annotations_json,
    read_partial_labels,
    read_scribbles,
    simulate_boxes,
    simulate_partial,
    simulate_points,
    simulate_scribbles,
    simulate_tags,
)
from frugalseg.annotations.kinds import Point
from frugalseg.data.case import IGNORE, Case
from frugalseg.engine.preprocess import label_to_tensor
from frugalseg.engine.weak_config import WeakConfig
from frugalseg.engine.weak_targets import WeakTargets, rasterise_boxes, scale_boxes, sparse_label_to_tensor
from frugalseg.errors import InputError
from frugalseg.pseudolabels import (
    PseudoLabel,
    box_random_walker_labels,
    cam_pseudo_masks,
    filter_by_confidence,
    random_walker_labels,
    read_pseudo_labels,
    region_growing,
)

if TYPE_CHECKING:
    from frugalseg.foundation import PromptableSegmenter

__all__ = ["WeakAnnotation", "build_weak_targets", "case_rng", "weak_annotations"]

WeakAnnotation: TypeAlias = Annotation | PseudoLabel


def case_rng(seed: int, case_id: str) -> np.random.Generator:
    """The generator of one case's simulated annotation: fixed by the seed and the case id, not the case order."""
    return np.random.default_rng([int(seed), zlib.crc32(case_id.encode("utf-8"))])


def _simulate(case: Case, index: int, weak: WeakConfig, num_classes: int, seed: int) -> Annotation:
    assert case.label is not None
    rng = case_rng(seed, case.case_id)
    kind = weak.labels
    if kind == "boxes":
        return simulate_boxes(case.label, jitter=weak.box_jitter, rng=rng)
    if kind == "points":
        return simulate_points(
            case.label, points_per_object=weak.points_per_object, negatives=weak.negative_points, rng=rng
        )
    if kind == "scribbles":
        return simulate_scribbles(case.label, rng=rng)
    if kind == "tags":
        return simulate_tags(case.label)
    groups = weak.partial_groups or tuple((c,) for c in range(1, num_classes))
    return simulate_partial(case.label, annotated_classes=groups[index % len(groups)])


def weak_annotations(
    cases: Sequence[Case], weak: WeakConfig, *, num_classes: int, seed: int
) -> dict[str, WeakAnnotation]:
    """One annotation of kind ``weak.labels`` per case that has one, from ``weak.source``.

    ``"simulate"`` draws it from the case's full mask (cases without one are skipped) with a generator fixed by
    ``seed`` and the case id; partial labels cycle through ``weak.partial_groups`` in case order.
    ``"dataset"`` takes the boxes or tags the cases carry. A path is read with :mod:`frugalseg.annotations.io`
    (JSON for tags/boxes/points, PNG folders for scribbles and partial labels) or
    :func:`frugalseg.pseudolabels.read_pseudo_labels` (pseudo-labels). ``"full"`` needs none (``{}``).

    Raises:
        InputError: an unreadable source, or a source that does not fit the kind.
    """
    kind, source = weak.labels, weak.source
    if kind == "full":
        return {}
    if source == "simulate":
        if kind == "pseudo":
            raise InputError("pseudo-labels cannot be simulated; give the folder that holds them")
        return {
            case.case_id: _simulate(case, i, weak, num_classes, seed)
            for i, case in enumerate(cases)
            if case.label is not None
        }
    if source == "dataset":
        if kind == "boxes":
            return {case.case_id: Boxes(tuple(case.boxes)) for case in cases if case.boxes}
        if kind == "tags":
            return {case.case_id: Tags(tuple(case.tags)) for case in cases if case.tags is not None}
        raise InputError(f"labels {kind!r}: the dataset carries only boxes and tags; give an annotation path")
    path = Path(source)
    shapes = {case.case_id: case.shape for case in cases}
    if kind in ("tags", "boxes", "points"):
        table = read_annotations_json(path)
        return {case_id: by_kind[kind] for case_id, by_kind in table.items() if kind in by_kind}
    if kind == "scribbles":
        return dict(read_scribbles(path, expected_shapes=shapes))
    if kind == "partial":
        return dict(read_partial_labels(path, expected_shapes=shapes))
    return dict(read_pseudo_labels(path, expected_shapes=shapes))


def _expect(annotation: WeakAnnotation, kind: type, case_id: str) -> None:
    if not isinstance(annotation, kind):
        raise InputError(f"case {case_id}: expected {kind.__name__} annotations, got {type(annotation).__name__}")


def _image_array(image: torch.Tensor) -> np.ndarray:
    """``(C, S, S)`` tensor -> ``(S, S)`` or ``(S, S, C)`` array for the numpy pseudo-label generators."""
    array = image.numpy()
    return array[0] if array.shape[0] == 1 else np.moveaxis(array, 0, -1)


def _seeds(annotation: WeakAnnotation, case: Case, *, size: int, num_classes: int) -> torch.Tensor:
    if isinstance(annotation, Scribbles):
        return sparse_label_to_tensor(annotation.label, size=size, num_classes=num_classes)
    _expect(annotation, Points, case.case_id)
    assert isinstance(annotation, Points)
    label, _ = points_to_label_map(annotation, case.shape)
    return sparse_label_to_tensor(label, size=size, num_classes=num_classes)


def _pseudo(
    image: torch.Tensor,
    annotation: WeakAnnotation,
    case: Case,
    weak: WeakConfig,
    *,
    num_classes: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random-walker or region-growing pseudo-labels (label, weight) of one case at the training size."""
    size = int(image.shape[-1])
    array = _image_array(image)
    spacing = (case.shape[0] * case.spacing[0] / size, case.shape[1] * case.spacing[1] / size)
    if isinstance(annotation, Boxes):
        boxes = scale_boxes(annotation.boxes, case.shape, size=size)
        label, confidence = box_random_walker_labels(
            array, boxes, num_classes=num_classes, core=weak.box_core, beta=weak.rw_beta, spacing=spacing
        )
    else:
        seeds = _seeds(annotation, case, size=size, num_classes=num_classes).numpy().astype(np.uint8)
        if weak.method == "region_growing":
            clicks = [Point(int(r), int(c), int(seeds[r, c])) for r, c in np.argwhere(seeds != IGNORE)]
            label, confidence = region_growing(
                array,
                clicks,
                num_classes=num_classes,
                tolerance_scale=weak.region_tolerance_scale,
                background_margin=weak.background_margin * size,
            )
        else:
            label, confidence = random_walker_labels(
                array, seeds, num_classes=num_classes, beta=weak.rw_beta, spacing=spacing
            )
    return _filtered(label, confidence, weak)


def _filtered(label: np.ndarray, confidence: np.ndarray, weak: WeakConfig) -> tuple[torch.Tensor, torch.Tensor]:
    kept, weight = filter_by_confidence(
        label, confidence, threshold=weak.min_confidence, mode="both" if weak.confidence_weighting else "drop"
    )
    return torch.from_numpy(kept.astype(np.int64)), torch.from_numpy(weight)


def build_weak_targets(
    cases: Sequence[Case],
    annotations: Mapping[str, WeakAnnotation],
    images: torch.Tensor,
    *,
    weak: WeakConfig,
    num_classes: int,
    seed: int = 0,
    batch_size: int = 16,
    device: str = "cpu",
    segmenter: PromptableSegmenter | None = None,
) -> WeakTargets:
    """Targets of ``cases`` at the size of ``images`` from their annotations (``case.label`` for ``"full"``).

    Args:
        cases: the training cases, in the order of ``images``.
        annotations: ``{case_id: annotation}`` of kind ``weak.labels`` (every case must have one).
        images: the cases' network inputs (:func:`~frugalseg.engine.preprocess.image_to_tensor`).
        weak: the weak-training configuration (kind, method, pseudo-label options).
        num_classes: classes including background.
        seed: seeds the CAM classifier (tags).
        batch_size: CAM classifier batch size.
        device: where the CAM classifier trains.
        segmenter: methods ``litemedsam`` and ``random_walker_litemedsam``: the promptable model (default:
            cached LiteMedSAM).

    Shape:
        ``images (N, C_img, S, S)`` -> :class:`WeakTargets` of ``N`` cases at ``S``.
    """
    count, size = len(cases), int(images.shape[-1])
    label = torch.full((count, size, size), IGNORE, dtype=torch.long)
    weight = torch.ones((count, size, size), dtype=torch.float32)
    annotated = torch.ones((count, num_classes), dtype=torch.bool)
    tags = torch.ones((count, num_classes), dtype=torch.bool)
    box_lists: list[list] = [[] for _ in cases]
    foundation = weak.method == "litemedsam"
    case_boxes: list[Boxes] = []
    walker_foundation = weak.method == "random_walker_litemedsam"
    strokes = torch.full((count, size, size), IGNORE, dtype=torch.long)  # random_walker_litemedsam only
    for i, case in enumerate(cases):
        if weak.labels == "full":
            if case.label is None:
                raise InputError(f"case {case.case_id} has no label map")
            label[i] = label_to_tensor(case.label, size=size, num_classes=num_classes)
            continue
        if case.case_id not in annotations:
            raise InputError(f"case {case.case_id} has no {weak.labels} annotation")
        annotation = annotations[case.case_id]
        if weak.labels in ("scribbles", "points"):
            _expect(annotation, Scribbles if weak.labels == "scribbles" else Points, case.case_id)
            if weak.uses_pseudo_labels and not foundation:  # litemedsam: the strokes first, refined later
                label[i], weight[i] = _pseudo(images[i], annotation, case, weak, num_classes=num_classes)
            else:
                label[i] = _seeds(annotation, case, size=size, num_classes=num_classes)
            if walker_foundation:
                strokes[i] = _seeds(annotation, case, size=size, num_classes=num_classes)
        elif weak.labels == "boxes":
            _expect(annotation, Boxes, case.case_id)
            assert isinstance(annotation, Boxes)
            box_lists[i] = scale_boxes(annotation.boxes, case.shape, size=size)
            case_boxes.append(annotation)
            if weak.uses_pseudo_labels and not foundation:
                label[i], weight[i] = _pseudo(images[i], annotation, case, weak, num_classes=num_classes)
        elif weak.labels == "partial":
            _expect(annotation, PartialLabels, case.case_id)
            assert isinstance(annotation, PartialLabels)
            label[i] = label_to_tensor(annotation.label, size=size, num_classes=num_classes)
            annotated[i] = torch.from_numpy(annotation.annotated_mask(num_classes))
        elif weak.labels == "tags":
            _expect(annotation, Tags, case.case_id)
            assert isinstance(annotation, Tags)
            try:
                tags[i] = torch.from_numpy(annotation.as_vector(num_classes))
            except ValueError as error:
                raise InputError(f"case {case.case_id}: {error}") from None
            tags[i, 0] = True
        else:
            _expect(annotation, PseudoLabel, case.case_id)
            assert isinstance(annotation, PseudoLabel)
            label[i] = label_to_tensor(annotation.label, size=size, num_classes=num_classes)
            resized = F.interpolate(torch.from_numpy(annotation.weight)[None, None], size=(size, size), mode="area")
            weight[i] = resized[0, 0]
    if foundation and weak.labels == "boxes":
        from frugalseg.engine.weak_foundation import foundation_box_labels  # loads the foundation model only here

        label = foundation_box_labels(
            cases, case_boxes, size=size, num_classes=num_classes, seed=seed, segmenter=segmenter
        )
    if walker_foundation:
        from frugalseg.engine.weak_foundation import foundation_region_labels

        label = foundation_region_labels(
            cases,
            label,
            seeds=strokes,
            num_classes=num_classes,
            seed=seed,
            segmenter=segmenter,
            margin=weak.walker_box_margin,
        )
        weight = torch.ones_like(weight)
    if weak.labels == "tags":
        low, high = weak.cam_thresholds
        cam_label, confidence = cam_pseudo_masks(
            images,
            tags,
            epochs=weak.cam_epochs,
            batch_size=batch_size,
            synthetic_negatives=weak.synthetic_negatives,
            background_threshold=low,
            foreground_threshold=high,
            seed=seed,
            device=device,
        )
        if foundation:
            from frugalseg.engine.weak_foundation import foundation_region_labels

            label = foundation_region_labels(
                cases, cam_label, classes=tags, num_classes=num_classes, seed=seed, segmenter=segmenter
            )
        else:
            for i in range(count):
                label[i], weight[i] = _filtered(cam_label[i].numpy().astype(np.uint8), confidence[i].numpy(), weak)
    max_boxes = max((len(b) for b in box_lists), default=0)
    planes = [rasterise_boxes(b, size=size, max_boxes=max_boxes) for b in box_lists]
    boxes = torch.stack([p[0] for p in planes]) if planes else torch.zeros(0, max_boxes, size, size, dtype=torch.bool)
    box_labels = torch.stack([p[1] for p in planes]) if planes else torch.zeros(0, max_boxes, dtype=torch.long)
    weight = torch.where(label == IGNORE, torch.zeros_like(weight), weight)
    return WeakTargets(label=label, weight=weight, boxes=boxes, box_labels=box_labels, annotated=annotated, tags=tags)
