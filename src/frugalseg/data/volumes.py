"""Readers of 3D volumes (NIfTI, DICOM series) as stacks of 2D cases, one per slice.

Slices are taken along the last spatial axis of the stored array; a slice's rows follow the first voxel axis
and its columns the second (no reorientation), and its spacing is that of those two axes. Intensities are
``float32`` with the file's rescaling applied. Every slice of one volume shares ``subject_id`` (the
volume), so splits by subject never separate slices of one volume.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from frugalseg.data.case import IGNORE, Case, Dataset
from frugalseg.data.images import MAX_CLASS_INDEX
from frugalseg.errors import InputError

__all__ = ["NIFTI_LAYOUTS", "is_nifti_file", "read_dicom", "read_nifti"]

NIFTI_LAYOUTS = (("imagesTr", ("labelsTr",)), ("imagesTs", ("labelsTs",)), ("images", ("labels", "masks")))
"""``(image folder, label folders)`` pairs searched in a NIfTI dataset root (nnU-Net/MSD and generic)."""

_MODALITY = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


def is_nifti_file(path: Path) -> bool:
    """Whether ``path`` is a ``.nii`` or ``.nii.gz`` file (hidden files excluded)."""
    name = path.name.lower()
    return path.is_file() and not name.startswith(".") and (name.endswith(".nii") or name.endswith(".nii.gz"))


def _nifti_stem(path: Path) -> str:
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else name[: -len(".nii")]


def _load_nifti(path: Path, *, as_label: bool) -> tuple[np.ndarray, tuple[float, ...]]:
    import nibabel as nib  # imported here: reading volumes is optional work

    try:
        image: Any = nib.load(str(path))
        data = np.asanyarray(image.dataobj) if as_label else image.get_fdata(dtype=np.float32)
        zooms = tuple(float(z) for z in image.header.get_zooms())
    except Exception as exc:  # nibabel raises many types on bad files
        raise InputError(f"cannot read NIfTI {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim not in (3, 4):
        raise InputError(f"NIfTI {path} has {data.ndim} dimensions; expected a 2D, 3D or 4D (x, y, z, c) volume")
    return data, zooms


def _label_volume(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    data, _ = _load_nifti(path, as_label=True)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if tuple(data.shape) != shape:
        raise InputError(f"label volume {path} has shape {tuple(data.shape)} but its image has shape {shape}")
    values = np.unique(data)
    bad = values[(values != np.round(values)) | (values < 0) | ((values > MAX_CLASS_INDEX) & (values != IGNORE))]
    if bad.size:
        shown = ", ".join(f"{v:g}" for v in bad[:8].astype(float))
        raise InputError(
            f"label volume {path} has unexpected values {shown}; expected class indices 0..{MAX_CLASS_INDEX}"
        )
    return data.astype(np.uint8)


def _nifti_groups(image_dir: Path, *, channel_files: bool) -> dict[str, list[Path]]:
    """``volume name -> image files``.

    With ``channel_files`` (nnU-Net ``imagesTr``/``imagesTs``), files ``case_0000``, ``case_0001``, ... are the
    channels of volume ``case``, provided every such group has channels ``0000..k-1``; otherwise each file
    is its own volume named by its stem.
    """
    paths = sorted(p for p in image_dir.iterdir() if is_nifti_file(p))
    groups: dict[str, list[tuple[int, Path]]] = {}
    for path in paths:
        match = _MODALITY.match(_nifti_stem(path)) if channel_files else None
        if match is None:
            groups = {}
            break
        groups.setdefault(match.group("case"), []).append((int(match.group("channel")), path))
    if groups and all(sorted(c for c, _ in files) == list(range(len(files))) for files in groups.values()):
        return {name: [path for _, path in sorted(files)] for name, files in groups.items()}
    return {_nifti_stem(path): [path] for path in paths}


def _volume_cases(name: str, images: list[Path], label_path: Path | None, split: str | None) -> Iterator[Case]:
    volumes = [_load_nifti(path, as_label=False) for path in images]
    data, zooms = volumes[0]
    if len(volumes) > 1:
        shapes = {v[0].shape for v in volumes}
        if len(shapes) > 1:
            raise InputError(f"channel files of volume {name} ({images[0]}, ...) differ in shape: {sorted(shapes)}")
        data = np.stack([v[0] for v in volumes], axis=-1)
    spatial = tuple(int(s) for s in data.shape[:3])
    label = _label_volume(label_path, spatial) if label_path is not None else None
    known = len(zooms) >= 2 and zooms[0] > 0 and zooms[1] > 0
    spacing = (zooms[0], zooms[1]) if known else (1.0, 1.0)
    for index in range(spatial[2]):
        image = np.ascontiguousarray(data[:, :, index], dtype=np.float32)
        metadata: dict[str, Any] = {
            "volume": name,
            "slice_index": index,
            "image_path": str(images[0]),
            "spacing_known": known,
        }
        if len(zooms) >= 3:
            metadata["slice_thickness"] = zooms[2]
        if label_path is not None:
            metadata["label_path"] = str(label_path)
        yield Case(
            case_id=f"{name}_z{index:03d}",
            subject_id=name,
            image=image,
            spacing=spacing,
            label=None if label is None else np.ascontiguousarray(label[:, :, index]),
            split=split,
            metadata=metadata,
        )


def read_nifti(root: str | Path) -> Dataset:
    """Read NIfTI volumes (and label volumes) as one case per slice.

    Layouts: nnU-Net/MSD ``imagesTr/`` + ``labelsTr/`` (and ``imagesTs/``, whose cases get ``split='test'``),
    or ``images/`` + ``labels/`` or ``masks/``; files ``.nii`` or ``.nii.gz``. nnU-Net channel files
    ``case_0000``, ``case_0001`` ... are stacked as channels; a label is found by the volume name.

    Args:
        root: the dataset folder.

    Returns:
        A :class:`Dataset`; cases ``f"{volume}_z{index:03d}"`` with ``subject_id`` the volume, ``float32``
        images, spacing from the header zooms of the slice plane, labels where a label volume exists. Class
        names are ``background, class_1, ...`` up to the largest label (``background, foreground`` if binary).

    Raises:
        InputError: no NIfTI layout, unreadable files, a label volume of another shape or with
            unexpected values.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"NIfTI dataset folder not found: {root}")
    cases: list[Case] = []
    for image_name, label_names in NIFTI_LAYOUTS:
        image_dir = root / image_name
        if not image_dir.is_dir():
            continue
        label_dir = next((root / n for n in label_names if (root / n).is_dir()), None)
        split = "test" if image_name == "imagesTs" else None
        channel_files = image_name in ("imagesTr", "imagesTs")
        for name, images in _nifti_groups(image_dir, channel_files=channel_files).items():
            label_path = None
            if label_dir is not None:
                label_path = next(
                    (
                        label_dir / f"{name}{ext}"
                        for ext in (".nii.gz", ".nii")
                        if (label_dir / f"{name}{ext}").is_file()
                    ),
                    None,
                )
            cases.extend(_volume_cases(name, images, label_path, split))
    if not cases:
        raise InputError(
            f"folder {root} holds no NIfTI volumes; expected imagesTr/ (+ labelsTr/) or images/ (+ labels/) "
            f"with .nii or .nii.gz files"
        )
    return Dataset(cases=cases, class_names=_default_classes(cases), source_format="nifti", root=str(root))


def _default_classes(cases: list[Case]) -> list[str]:
    top = 0
    for case in cases:
        if case.label is not None:
            counts = np.bincount(case.label.ravel(), minlength=256)
            counts[IGNORE] = 0
            present = np.flatnonzero(counts)
            top = max(top, int(present[-1]) if present.size else 0)
    if top <= 1:
        return ["background", "foreground"]
    return ["background"] + [f"class_{index}" for index in range(1, top + 1)]


def _dicom_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".dcm")


def _slice_position(dataset: Any) -> float | None:
    """Position of a slice along its normal, from ImagePositionPatient and ImageOrientationPatient."""
    position = getattr(dataset, "ImagePositionPatient", None)
    orientation = getattr(dataset, "ImageOrientationPatient", None)
    if position is None:
        return None
    position = np.asarray([float(v) for v in position])
    if orientation is not None and len(orientation) == 6:
        row, col = (
            np.asarray([float(v) for v in orientation[:3]]),
            np.asarray([float(v) for v in orientation[3:]]),
        )
        return float(np.dot(position, np.cross(row, col)))
    return float(position[2])


def _dicom_pixels(dataset: Any, path: Path) -> np.ndarray:
    try:
        pixels = dataset.pixel_array
    except Exception as exc:  # missing decoders, truncated pixel data, ...
        raise InputError(f"cannot decode pixels of DICOM {path}: {str(exc).splitlines()[0]}") from None
    samples = int(getattr(dataset, "SamplesPerPixel", 1))
    if samples == 3:
        return np.asarray(pixels, dtype=np.uint8) if pixels.dtype == np.uint8 else pixels.astype(np.float32)
    slope = float(getattr(dataset, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(dataset, "RescaleIntercept", 0.0) or 0.0)
    return (pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)).astype(np.float32)


def read_dicom(root: str | Path) -> Dataset:
    """Read the DICOM files under a folder (recursively) as one case per slice or frame.

    Files are grouped by ``SeriesInstanceUID``; each series is ordered by the slice position along its
    normal (``ImagePositionPatient`` with ``ImageOrientationPatient``), else by ``InstanceNumber``, else by
    file name. Pixel values get ``RescaleSlope``/``RescaleIntercept``; spacing is ``PixelSpacing`` (row,
    column) in mm, else ``ImagerPixelSpacing``, else ``(1.0, 1.0)`` with ``metadata['spacing_known']=False``.
    Multi-frame files give one case per frame. Files without pixel data (e.g. ``DICOMDIR``) are skipped.

    Args:
        root: a folder of ``.dcm`` files (subfolders included).

    Returns:
        A :class:`Dataset` of unlabelled cases: ``case_id`` ``f"{series}_z{index:03d}"`` where ``series`` is
        ``PatientID_SeriesNumber`` (or the UID's last digits), ``subject_id`` the ``PatientID`` (else the
        series).

    Raises:
        InputError: no ``.dcm`` files, or a file pydicom cannot read or decode (the message names it).
    """
    import pydicom  # imported here: reading DICOM is optional work

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"DICOM folder not found: {root}")
    files = _dicom_files(root)
    if not files:
        raise InputError(f"folder {root} holds no .dcm files")
    series: dict[str, list[tuple[Path, Any]]] = {}
    for path in files:
        try:
            dataset = pydicom.dcmread(path)
        except Exception as exc:
            raise InputError(f"cannot read DICOM {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
        if "PixelData" not in dataset:
            continue
        uid = str(getattr(dataset, "SeriesInstanceUID", "") or f"folder:{path.parent}")
        series.setdefault(uid, []).append((path, dataset))
    cases: list[Case] = []
    names: set[str] = set()
    for uid, members in series.items():
        positions = [_slice_position(ds) for _, ds in members]
        numbers: list[Any] = [getattr(ds, "InstanceNumber", None) for _, ds in members]
        if all(p is not None for p in positions) and len(set(positions)) == len(positions):
            order = sorted(range(len(members)), key=lambda i: (positions[i], str(members[i][0])))
        elif all(n is not None for n in numbers):
            order = sorted(range(len(members)), key=lambda i: (int(numbers[i]), str(members[i][0])))
        else:
            order = sorted(range(len(members)), key=lambda i: str(members[i][0]))
        first = members[order[0]][1]
        patient = str(getattr(first, "PatientID", "") or "").strip()
        number = getattr(first, "SeriesNumber", None)
        base = "_".join(part for part in (patient, "" if number is None else str(number)) if part) or uid[-8:]
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", base)
        while name in names:
            name = f"{name}_{uid[-4:]}"
        names.add(name)
        spacing_tag: Any = getattr(first, "PixelSpacing", None) or getattr(first, "ImagerPixelSpacing", None)
        known = spacing_tag is not None and len(spacing_tag) == 2 and all(float(v) > 0 for v in spacing_tag)
        spacing = (float(spacing_tag[0]), float(spacing_tag[1])) if known else (1.0, 1.0)
        index = 0
        for position in order:
            path, dataset = members[position]
            pixels = _dicom_pixels(dataset, path)
            frames = pixels if int(getattr(dataset, "NumberOfFrames", 1) or 1) > 1 else pixels[None]
            for frame in frames:
                cases.append(
                    Case(
                        case_id=f"{name}_z{index:03d}",
                        subject_id=patient or name,
                        image=np.ascontiguousarray(frame),
                        spacing=spacing,
                        metadata={
                            "image_path": str(path),
                            "series_uid": uid,
                            "volume": name,
                            "slice_index": index,
                            "spacing_known": known,
                        },
                    )
                )
                index += 1
    if not cases:
        raise InputError(f"the .dcm files under {root} hold no image pixel data")
    return Dataset(cases=cases, class_names=["background", "foreground"], source_format="dicom", root=str(root))
