"""Reader of the generic layout: a folder of images, a folder of masks, optionally a ``test/`` split.

Layout::

    root/
      images/            case images (PNG, JPEG, BMP, TIFF)
      masks/             label masks named like their image, optionally with a suffix such as ``_lesion``,
                         ``_mask``, ``_seg``, ``_label`` or ``_gt`` (``labels/``, ``lesion_masks/``,
                         ``annotations/`` are accepted names of this folder too)
      test/images/, test/masks/     (optional) the source's held-out split: those cases get ``split='test'``
      classes.txt        (optional) one class name per line, background first
      diagnosis.csv      (optional) first column the case id, a column such as ``Clinical Diagnosis``,
                         ``label`` or ``tag`` giving an image-level tag

Images without a mask are read with ``label=None`` (the unlabelled pool). A folder with image files and no
``images/`` subfolder is read as images directly in ``root``.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import numpy as np

from frugalseg.data.case import IGNORE, Case, Dataset
from frugalseg.data.images import is_image_file, read_image, read_mask
from frugalseg.errors import InputError

__all__ = ["MASK_FOLDERS", "MASK_SUFFIXES", "SPLIT_FOLDERS", "find_image_dir", "read_folder"]

logger = logging.getLogger(__name__)

MASK_FOLDERS = ("masks", "labels", "lesion_masks", "annotations")
"""Names of the folder holding masks beside ``images/``, in order of preference."""

MASK_SUFFIXES = (
    "_lesion",
    "_mask",
    "_masks",
    "_seg",
    "_segmentation",
    "_label",
    "_labels",
    "_gt",
    "_annotation",
)
"""Endings a mask's stem may add to its image's stem (compared case-insensitively, ``-`` or ``_``)."""

SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
"""Subfolders of ``root`` with the same layout whose cases get the split named here."""

_TAG_COLUMNS = ("clinical diagnosis", "diagnosis", "label", "tag", "class")


def find_image_dir(folder: Path) -> Path | None:
    """The image folder of ``folder``: ``folder/images`` if present, else ``folder`` if it holds images."""
    if (folder / "images").is_dir():
        return folder / "images"
    if any(is_image_file(path) for path in folder.iterdir() if path.is_file()):
        return folder
    return None


def _list_images(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_file() and is_image_file(path))


def _match_masks(image_paths: list[Path], mask_dir: Path | None) -> dict[str, Path]:
    """``image stem -> mask path``, allowing the mask stem to carry one of :data:`MASK_SUFFIXES`."""
    if mask_dir is None:
        return {}
    stems = {path.stem for path in image_paths}
    matched: dict[str, Path] = {}
    orphans: list[str] = []
    for mask in _list_images(mask_dir):
        stem = mask.stem
        owner = stem if stem in stems else None
        if owner is None:
            lowered = stem.lower().replace("-", "_")
            for suffix in MASK_SUFFIXES:
                if lowered.endswith(suffix) and stem[: -len(suffix)] in stems:
                    owner = stem[: -len(suffix)]
                    break
        if owner is None:
            orphans.append(mask.name)
            continue
        if owner in matched:
            raise InputError(f"image {owner} has two masks, {matched[owner]} and {mask}; expected one mask per image")
        matched[owner] = mask
    if orphans and not matched:
        raise InputError(
            f"none of the {len(orphans)} masks in {mask_dir} (e.g. {orphans[0]}) match an image name in "
            f"{image_paths[0].parent if image_paths else mask_dir}; expected the image stem plus an optional "
            f"suffix such as _mask"
        )
    if orphans:
        logger.warning("%d masks in %s match no image, e.g. %s", len(orphans), mask_dir, orphans[0])
    return matched


def _read_class_names(path: Path) -> list[str]:
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(names) < 2:
        raise InputError(f"{path} lists {len(names)} class names; expected background first and at least one more")
    return names


def _read_tags(path: Path) -> dict[str, str]:
    """``case id -> tag value`` from a CSV whose first column is the case id."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    if not rows:
        return {}
    header = [cell.strip().lower() for cell in rows[0]]
    column = next((header.index(name) for name in _TAG_COLUMNS if name in header), None)
    if column is None:
        column = next((i for i, name in enumerate(header) if any(key in name for key in _TAG_COLUMNS)), None)
    if column is None:
        raise InputError(
            f"{path} has no tag column; expected a column named like 'Clinical Diagnosis', 'label' or 'tag' "
            f"(header is {rows[0]})"
        )
    tags: dict[str, str] = {}
    for line, row in enumerate(rows[1:], start=2):
        if column >= len(row):
            raise InputError(f"{path} line {line} has no value in column '{rows[0][column]}'")
        tags[row[0].strip()] = row[column].strip()
    return tags


def _tag_index(value: str, vocabulary: list[str]) -> int:
    try:
        return int(value)
    except ValueError:
        return vocabulary.index(value)


def read_folder(root: str | Path) -> Dataset:
    """Read a folder of images and masks (see the module docstring for the layout).

    Args:
        root: the dataset folder.

    Returns:
        A :class:`Dataset`. Cases have ``spacing=(1.0, 1.0)`` with ``metadata['spacing_known']=False``,
        ``subject_id`` equal to ``case_id`` (the image stem, prefixed by the split folder if two splits
        share a stem), ``label`` ``None`` where no mask exists, ``tags=[value]`` and
        ``metadata['diagnosis']`` where ``diagnosis.csv`` names the case. Class names come from
        ``classes.txt`` or default to ``background, foreground`` (binary) / ``background, class_1, ...``.

    Raises:
        InputError: no images, unreadable files, a mask of the wrong size or with unexpected values,
            ambiguous masks, or labels beyond the classes of ``classes.txt``.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder not found: {root}")
    groups: list[tuple[Path, Path, str | None]] = []  # (folder, its image folder, split)
    own_images = find_image_dir(root)
    if own_images is not None:
        groups.append((root, own_images, None))
    for name, folder_split in SPLIT_FOLDERS.items():
        sub_images = find_image_dir(root / name) if (root / name).is_dir() else None
        if sub_images is not None:
            groups.append((root / name, sub_images, folder_split))
    if not groups:
        raise InputError(f"folder {root} holds no images; expected images/ (+ masks/) or image files")

    tags_path = next((root / name for name in ("diagnosis.csv", "tags.csv") if (root / name).is_file()), None)
    tags = _read_tags(tags_path) if tags_path is not None else {}
    vocabulary = sorted({value for value in tags.values() if not value.lstrip("-").isdigit()})

    cases: list[Case] = []
    seen: set[str] = set()
    for folder, image_dir, split in groups:
        image_paths = _list_images(image_dir)
        mask_dir = next((folder / name for name in MASK_FOLDERS if (folder / name).is_dir()), None)
        masks = _match_masks(image_paths, mask_dir)
        for image_path in image_paths:
            case_id = image_path.stem
            if case_id in seen:
                case_id = f"{folder.name}/{case_id}"
            if case_id in seen:
                raise InputError(f"two images named {image_path.stem} in {image_dir}; expected unique names")
            seen.add(case_id)
            image = read_image(image_path)
            metadata: dict[str, Any] = {"image_path": str(image_path), "spacing_known": False}
            label = None
            if image_path.stem in masks:
                label = read_mask(masks[image_path.stem], expected_shape=image.shape)
                metadata["mask_path"] = str(masks[image_path.stem])
            case_tags = None
            if image_path.stem in tags:
                value = tags[image_path.stem]
                metadata["diagnosis"] = int(value) if value.lstrip("-").isdigit() else value
                case_tags = [_tag_index(value, vocabulary)]
            cases.append(
                Case(
                    case_id=case_id,
                    subject_id=case_id,
                    image=image,
                    label=label,
                    tags=case_tags,
                    split=split,
                    metadata=metadata,
                )
            )
    if not cases:
        raise InputError(f"folder {root} holds no images; expected PNG, JPEG, BMP or TIFF files in images/")

    max_label = max((_max_class(case.label) for case in cases if case.label is not None), default=1)
    classes_path = root / "classes.txt"
    if classes_path.is_file():
        class_names = _read_class_names(classes_path)
        if max_label >= len(class_names):
            raise InputError(
                f"masks in {root} hold class {max_label} but {classes_path} names only {len(class_names)} classes"
            )
    elif max_label <= 1:
        class_names = ["background", "foreground"]
    else:
        class_names = ["background"] + [f"class_{index}" for index in range(1, max_label + 1)]
    return Dataset(cases=cases, class_names=class_names, source_format="folder", root=str(root))


def _max_class(label: np.ndarray) -> int:
    """Largest class index in ``label``, ignoring ``IGNORE``."""
    counts = np.bincount(label.ravel(), minlength=256)
    counts[IGNORE] = 0
    present = np.flatnonzero(counts)
    return int(present[-1]) if present.size else 0
