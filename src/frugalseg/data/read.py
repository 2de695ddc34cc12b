"""One entry point for every dataset layout: detect the format of a path and read it.

``'phantom'``, ``'phantom:N'`` or ``'phantom:N:SIZE'`` (not a path) gives the built-in synthetic IVUS phantom.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from frugalseg.data.boxcsv import BOX_CSV_NAME, read_box_csv
from frugalseg.data.case import Dataset
from frugalseg.data.echoplaque import find_echoplaque_xml, read_echoplaque
from frugalseg.data.folder import SPLIT_FOLDERS, find_image_dir, read_folder
from frugalseg.data.hc18 import read_hc18
from frugalseg.data.volumes import NIFTI_LAYOUTS, is_nifti_file, read_dicom, read_nifti
from frugalseg.errors import InputError

__all__ = ["FORMATS", "detect_format", "read_dataset"]

FORMATS = ("folder", "hc18", "echoplaque", "boxcsv", "nifti", "dicom", "phantom")
"""Names accepted by ``read_dataset(..., format=...)``."""

_LAYOUTS = (
    "images/ (+ masks/) [folder], HC18 training_set/ + *pixel_size*.csv [hc18], Echoplaque XML + k.jpg "
    "[echoplaque], _annotations.csv [boxcsv], imagesTr/ or images/ with .nii(.gz) [nifti], "
    ".dcm files [dicom], or 'phantom[:N[:SIZE]]'"
)

_PHANTOM_FRAMES, _PHANTOM_SIZE = 200, 256


def _is_phantom(path: str | Path) -> bool:
    text = str(path)
    return text == "phantom" or text.startswith("phantom:")


def _parse_phantom(text: str) -> tuple[int, int]:
    parts = text.split(":")[1:]
    if len(parts) > 2:
        raise InputError(f"cannot read '{text}': expected 'phantom', 'phantom:N' or 'phantom:N:SIZE'")
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        raise InputError(f"cannot read '{text}': N and SIZE in 'phantom:N:SIZE' must be integers") from None
    frames = numbers[0] if numbers else _PHANTOM_FRAMES
    size = numbers[1] if len(numbers) > 1 else _PHANTOM_SIZE
    if frames < 1 or size < 16:
        raise InputError(f"cannot read '{text}': expected N >= 1 frames and SIZE >= 16 pixels")
    return frames, size


def _has_dicom(root: Path, *, limit: int = 10000) -> bool:
    for count, path in enumerate(root.rglob("*")):
        if path.suffix.lower() == ".dcm" and path.is_file():
            return True
        if count >= limit:
            break
    return False


def detect_format(path: str | Path) -> str:
    """Name the layout of a dataset path (one of :data:`FORMATS`).

    Args:
        path: a dataset folder, or ``'phantom[:N[:SIZE]]'``.

    Returns:
        The format name.

    Raises:
        InputError: the path does not exist, is not a folder, is empty, or matches no known layout.
    """
    if _is_phantom(path):
        return "phantom"
    root = Path(path)
    if not root.exists():
        raise InputError(f"dataset path not found: {root}; expected a folder with one of: {_LAYOUTS}")
    if not root.is_dir():
        raise InputError(f"dataset path {root} is a file; expected a folder with one of: {_LAYOUTS}")
    if not any(root.iterdir()):
        raise InputError(f"dataset folder {root} is empty; expected one of: {_LAYOUTS}")
    if any((root / name).is_dir() for name in ("training_set", "test_set")) and any(root.glob("*pixel_size*.csv")):
        return "hc18"
    if find_echoplaque_xml(root) is not None or any(
        find_echoplaque_xml(sub) is not None for sub in root.iterdir() if sub.is_dir()
    ):
        return "echoplaque"
    if (root / BOX_CSV_NAME).is_file() or any(
        (root / name / BOX_CSV_NAME).is_file() for name in ("train", "valid", "val", "validation", "test")
    ):
        return "boxcsv"
    for image_name, _ in NIFTI_LAYOUTS:
        folder = root / image_name
        if folder.is_dir() and any(is_nifti_file(p) for p in folder.iterdir()):
            return "nifti"
    if find_image_dir(root) is not None or any(
        (root / name).is_dir() and find_image_dir(root / name) is not None for name in SPLIT_FOLDERS
    ):
        return "folder"
    if _has_dicom(root):
        return "dicom"
    raise InputError(f"cannot tell the layout of {root}; expected one of: {_LAYOUTS}")


def _single_subfolder(path: str | Path) -> Path | None:
    """The one sub-folder of a wrapper folder (e.g. ``usgra/`` holding ``dataset/`` and a licence), else None."""
    root = Path(path)
    if _is_phantom(path) or not root.is_dir():
        return None
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    folders = [p for p in entries if p.is_dir()]
    others = [p for p in entries if p.is_file() and not p.name.upper().startswith(("LICENSE", "README"))]
    return folders[0] if len(folders) == 1 and not others else None


def read_dataset(path: str | Path, *, format: str | None = None) -> Dataset:
    """Read a dataset of any supported layout.

    Args:
        path: a dataset folder, or ``'phantom'``, ``'phantom:N'``, ``'phantom:N:SIZE'`` for the synthetic IVUS
            phantom (defaults ``N=200`` frames of ``SIZE=256`` pixels, seed 0).
        format: one of :data:`FORMATS`, or ``None`` to detect it with :func:`detect_format`.

    Returns:
        The :class:`Dataset`.

    Raises:
        InputError: a missing or empty path, an unknown layout or format, or any bad file inside.
    """
    if format is None:
        inner = _single_subfolder(path)
        if inner is not None:
            return read_dataset(inner)
        format = detect_format(path)
    if format not in FORMATS:
        raise InputError(f"unknown dataset format '{format}' for {path}; expected one of {', '.join(FORMATS)}")
    if format == "phantom":
        if not _is_phantom(path):
            raise InputError(f"format 'phantom' takes 'phantom[:N[:SIZE]]', got {path}")
        frames, size = _parse_phantom(str(path))
        from frugalseg.data.phantom import make_phantom_dataset  # imported here: only the demo needs it

        return make_phantom_dataset(num_frames=frames, size=size, seed=0)
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"dataset folder not found: {root}; expected a folder with one of: {_LAYOUTS}")
    readers: dict[str, Callable[[Path], Dataset]] = {
        "folder": read_folder,
        "hc18": read_hc18,
        "echoplaque": read_echoplaque,
        "boxcsv": read_box_csv,
        "nifti": read_nifti,
        "dicom": read_dicom,
    }
    return readers[format](root)
