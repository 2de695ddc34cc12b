"""The record every reader returns: one 2D image with its spacing, labels and weak annotations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["IGNORE", "Box", "Case", "Dataset"]

IGNORE = 255
"""Label value of unlabelled pixels in a partial label map."""


@dataclass(frozen=True, kw_only=True)
class Box:
    """An axis-aligned box around one object, in pixel coordinates ``(xmin, ymin, xmax, ymax)``.

    ``xmax``/``ymax`` are exclusive, so the box covers columns ``xmin..xmax-1`` and rows ``ymin..ymax-1``.
    ``label`` is the class index the box belongs to.
    """

    xmin: float
    ymin: float
    xmax: float
    ymax: float
    label: int = 1

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.xmin, self.ymin, self.xmax, self.ymax)


@dataclass(kw_only=True)
class Case:
    """One 2D image and what is known about it.

    Attributes:
        case_id: unique within its dataset (usually the file stem).
        subject_id: the patient / pullback / subject; splits never separate cases of one subject.
        image: ``(H, W)`` grey or ``(H, W, C)`` colour, ``uint8`` or ``float32`` as read.
        spacing: ``(row_mm, col_mm)`` millimetres per pixel (``(1.0, 1.0)`` when the source has none).
        label: ``(H, W)`` ``uint8`` class map (0 background, ``IGNORE`` unlabelled) or ``None``.
        boxes: weak box annotations, if any.
        tags: image-level class tags (class indices present), if any.
        split: ``"train"``/``"test"`` when the source fixes a split, else ``None``.
        metadata: anything else from the source (paths, frame numbers, diagnosis, ...).
    """

    case_id: str
    subject_id: str
    image: np.ndarray
    spacing: tuple[float, float] = (1.0, 1.0)
    label: np.ndarray | None = None
    boxes: list[Box] = field(default_factory=list)
    tags: list[int] | None = None
    split: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of the image."""
        return (int(self.image.shape[0]), int(self.image.shape[1]))

    @property
    def channels(self) -> int:
        return 1 if self.image.ndim == 2 else int(self.image.shape[2])


@dataclass(kw_only=True)
class Dataset:
    """Cases read from one source, with the names of their classes (index 0 is background)."""

    cases: list[Case]
    class_names: list[str]
    source_format: str
    root: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.cases)
