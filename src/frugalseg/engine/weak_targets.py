"""Weak annotations as training targets at the network's input size, and their augmentation.

Every annotation kind becomes the same few tensors (:class:`WeakTargets`): a label map (``IGNORE`` where
unknown) with a per-pixel weight, one mask per box, the classes annotated (partial labels) and the tags.
Sparse maps (scribbles, clicks) are resized so that a cell holding any annotated pixel stays annotated
(:func:`sparse_label_to_tensor`); dense maps use :func:`~frugalseg.engine.preprocess.label_to_tensor`.

Augmentation (:func:`make_batch`) samples the engine's parameters once per batch and applies them to the
images and the label map with :func:`~frugalseg.engine.augment.apply_augmentation`; the weight, the
"inside the source image" mask and the box masks are warped with the same affine grid (nearest neighbour),
and each box is re-derived as the bounding box of its warped mask. Boxes are augmented without rotation so
that they stay tight boxes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from frugalseg.data.case import IGNORE, Box
from frugalseg.engine.augment import apply_augmentation, sample_augmentation

__all__ = [
    "WeakBatch",
    "WeakTargets",
    "boxes_from_masks",
    "make_batch",
    "rasterise_boxes",
    "scale_boxes",
    "sparse_label_to_tensor",
]


def sparse_label_to_tensor(label: np.ndarray, *, size: int, num_classes: int) -> torch.Tensor:
    """Resize a sparse label map so that every cell holding an annotated pixel stays annotated.

    Each class's pixels are area-averaged; a cell takes the class with the largest share among the
    annotated classes and is ``IGNORE`` only when no annotated pixel falls in it.

    Shape:
        ``(H, W)`` -> ``(size, size)`` int64.
    """
    array = np.asarray(label, dtype=np.int64)
    annotated = array != IGNORE
    if int(array[annotated].max(initial=0)) >= num_classes:
        raise ValueError(f"label value {int(array[annotated].max())} outside 0..{num_classes - 1}")
    target = torch.from_numpy(np.where(annotated, array, num_classes))
    one_hot = F.one_hot(target, num_classes + 1)[..., :num_classes].permute(2, 0, 1).float()[None]
    shares = F.interpolate(one_hot, size=(size, size), mode="area")[0]
    best, index = shares.max(dim=0)
    return torch.where(best > 0, index, torch.full_like(index, IGNORE))


def scale_boxes(boxes: Sequence[Box], shape: Sequence[int], *, size: int) -> list[Box]:
    """Boxes of an ``(H, W)`` image in the pixels of its ``size x size`` resized version (widened to whole pixels)."""
    height, width = int(shape[0]), int(shape[1])
    out = []
    for box in boxes:
        x0, x1 = math.floor(box.xmin * size / width), math.ceil(box.xmax * size / width)
        y0, y1 = math.floor(box.ymin * size / height), math.ceil(box.ymax * size / height)
        x0, y0 = max(0, min(x0, size - 1)), max(0, min(y0, size - 1))
        x1, y1 = min(size, max(x1, x0 + 1)), min(size, max(y1, y0 + 1))
        out.append(Box(xmin=x0, ymin=y0, xmax=x1, ymax=y1, label=int(box.label)))
    return out


def rasterise_boxes(boxes: Sequence[Box], *, size: int, max_boxes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One mask per box (boxes already in ``size`` pixels), padded to ``max_boxes`` planes of label 0.

    Shape:
        ``-> (max_boxes, size, size)`` bool, ``(max_boxes,)`` int64.
    """
    masks = torch.zeros(max_boxes, size, size, dtype=torch.bool)
    labels = torch.zeros(max_boxes, dtype=torch.long)
    for k, box in enumerate(boxes):
        masks[k, int(box.ymin) : int(box.ymax), int(box.xmin) : int(box.xmax)] = True
        labels[k] = int(box.label)
    return masks, labels


def boxes_from_masks(masks: torch.Tensor, labels: torch.Tensor) -> list[list[Box]]:
    """The bounding box of every non-empty mask with a non-zero label, per image.

    Shape:
        ``masks (B, K, H, W)`` bool, ``labels (B, K)`` int -> ``B`` lists of :class:`~frugalseg.data.case.Box`.
    """
    out: list[list[Box]] = []
    for image_masks, image_labels in zip(masks, labels, strict=True):
        boxes = []
        for mask, label in zip(image_masks, image_labels, strict=True):
            if int(label) <= 0:
                continue
            rows = torch.nonzero(mask.any(dim=1)).flatten()
            cols = torch.nonzero(mask.any(dim=0)).flatten()
            if rows.numel() and cols.numel():
                boxes.append(
                    Box(
                        xmin=int(cols[0]),
                        ymin=int(rows[0]),
                        xmax=int(cols[-1]) + 1,
                        ymax=int(rows[-1]) + 1,
                        label=int(label),
                    )
                )
        out.append(boxes)
    return out


@dataclass(frozen=True)
class WeakTargets:
    """Training targets of ``N`` cases at the network's input size ``S``.

    Attributes:
        label: class per pixel, ``IGNORE`` where unknown.
        weight: per-pixel weight of ``label`` (1 by default, 0 where ``IGNORE``).
        boxes: one mask per box (padded with empty planes of label 0).
        box_labels: class of each box plane, 0 for padding.
        annotated: classes annotated in each image (partial labels; all True otherwise).
        tags: classes present in each image (tags; all True when unknown). Column 0 is background.

    Shape:
        label ``(N, S, S)`` int64, weight ``(N, S, S)`` float32, boxes ``(N, K, S, S)`` bool,
        box_labels ``(N, K)`` int64, annotated ``(N, C)`` bool, tags ``(N, C)`` bool.
    """

    label: torch.Tensor
    weight: torch.Tensor
    boxes: torch.Tensor
    box_labels: torch.Tensor
    annotated: torch.Tensor
    tags: torch.Tensor

    def __len__(self) -> int:
        return int(self.label.shape[0])


@dataclass(frozen=True)
class WeakBatch:
    """One (possibly augmented) batch as the weak losses read it.

    Attributes:
        images: network input.
        label: class per pixel, ``IGNORE`` where unknown or mapped from outside the image.
        weight: per-pixel weight of ``label``.
        inside: pixels mapped from inside the source image (the gate of the CRF and emptiness terms).
        boxes: per image, the boxes in pixels of the batch.
        annotated: classes annotated per image.

    Shape:
        images ``(B, C_img, S, S)``, label ``(B, S, S)`` int64, weight ``(B, S, S)`` float32,
        inside ``(B, S, S)`` bool, annotated ``(B, C)`` bool.
    """

    images: torch.Tensor
    label: torch.Tensor
    weight: torch.Tensor
    inside: torch.Tensor
    boxes: list[list[Box]]
    annotated: torch.Tensor

    def to(self, device: str | torch.device) -> WeakBatch:
        return WeakBatch(
            images=self.images.to(device),
            label=self.label.to(device),
            weight=self.weight.to(device),
            inside=self.inside.to(device),
            boxes=self.boxes,
            annotated=self.annotated.to(device),
        )


def make_batch(
    images: torch.Tensor,
    targets: WeakTargets,
    index: torch.Tensor,
    *,
    generator: torch.Generator,
    augment: bool = True,
    rotation: bool = True,
) -> WeakBatch:
    """Select ``index`` and, with ``augment``, warp images and every target with one sampled transform.

    Shape:
        ``images (N, C_img, S, S)``, ``index (B,)`` -> a :class:`WeakBatch` of ``B`` images.
    """
    batch = images[index]
    label, weight = targets.label[index], targets.weight[index]
    boxes, box_labels = targets.boxes[index], targets.box_labels[index]
    inside = torch.ones_like(label, dtype=torch.bool)
    if augment:
        params = sample_augmentation(len(index), generator=generator, max_rotation_deg=30.0 if rotation else 0.0)
        batch, label = apply_augmentation(batch, label, params, generator=generator)
        planes = torch.cat([weight[:, None], inside[:, None].float(), boxes.float()], dim=1)
        grid = F.affine_grid(params.theta, list(planes.shape), align_corners=False)
        warped = F.grid_sample(planes, grid, mode="nearest", padding_mode="zeros", align_corners=False)
        weight, inside, boxes = warped[:, 0], warped[:, 1] > 0.5, warped[:, 2:] > 0.5
        weight = torch.where(label == IGNORE, torch.zeros_like(weight), weight)
    return WeakBatch(
        images=batch,
        label=label,
        weight=weight,
        inside=inside,
        boxes=boxes_from_masks(boxes, box_labels),
        annotated=targets.annotated[index],
    )
