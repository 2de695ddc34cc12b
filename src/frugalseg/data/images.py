"""Read and write 2D images and label masks, turning every unreadable or odd file into one clear error.

Images come back as ``uint8`` ``(H, W)`` grey or ``(H, W, 3)`` RGB (16-bit and float images as ``float32``);
masks come back as ``uint8`` ``(H, W)`` class maps (0 background, ``IGNORE`` = 255 unlabelled).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from frugalseg.atomic import atomic_write_bytes
from frugalseg.data.case import IGNORE
from frugalseg.errors import InputError

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_CLASS_INDEX",
    "is_image_file",
    "read_image",
    "read_mask",
    "write_image_png",
    "write_mask_png",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""File name endings read as 2D images (lower case)."""

MAX_CLASS_INDEX = 63
"""Largest class index a mask may hold (besides ``IGNORE``); larger values mean it is not a class map."""

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def is_image_file(path: str | Path) -> bool:
    """Whether ``path`` names a 2D image file frugalseg reads (by its ending, hidden files excluded)."""
    path = Path(path)
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _open(path: Path, what: str) -> Image.Image:
    """Open and decode ``path`` fully, or raise :class:`InputError` naming it."""
    if not path.is_file():
        raise InputError(f"{what} file not found: {path}")
    try:
        image = Image.open(path)
        image.load()
    except Exception as exc:  # PIL raises many types (OSError, SyntaxError, ValueError, ...) on bad files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"cannot read {what} {path}: {reason}") from None
    return image


def _grey_if_equal(array: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` whose three channels are identical -> ``(H, W)``; anything else unchanged."""
    if (
        array.ndim == 3
        and array.shape[2] == 3
        and np.array_equal(array[..., 0], array[..., 1])
        and np.array_equal(array[..., 0], array[..., 2])
    ):
        return np.ascontiguousarray(array[..., 0])
    return array


def read_image(path: str | Path) -> np.ndarray:
    """Read a 2D image file (PNG, JPEG, BMP, TIFF).

    Colour images whose three channels are equal become grey; RGBA, palette and CMYK images become RGB
    (alpha dropped); 16-bit and floating-point images become ``float32`` with their values unchanged.

    Args:
        path: the image file.

    Returns:
        ``uint8`` ``(H, W)`` or ``(H, W, 3)``, or ``float32`` ``(H, W)`` for 16-bit/float sources.

    Raises:
        InputError: the file is missing, corrupt or not an image (the message names the file).

    Shape:
        Output: ``(H, W)`` grey or ``(H, W, 3)`` RGB.
    """
    path = Path(path)
    image = _open(path, "image")
    if image.mode in _SIXTEEN_BIT_MODES:
        return np.asarray(image).astype(np.float32)
    if image.mode in ("1", "LA"):
        image = image.convert("L")
    elif image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    array = np.asarray(image)
    if array.ndim not in (2, 3):
        raise InputError(f"cannot read image {path}: expected a 2D image, got an array of shape {array.shape}")
    return _grey_if_equal(np.ascontiguousarray(array, dtype=np.uint8))


def _distinct_values(array: np.ndarray) -> np.ndarray:
    """Sorted distinct values (a histogram for ``uint8``, several times faster than ``np.unique``)."""
    if array.dtype == np.uint8:
        return np.flatnonzero(np.bincount(array.ravel(), minlength=256))
    return np.unique(array)


def read_mask(path: str | Path, *, expected_shape: Sequence[int] | None = None) -> np.ndarray:
    """Read a label mask as a ``uint8`` class map.

    Accepted encodings: palette PNG (the palette indices are the classes), grey (the grey values are the
    classes), RGB/RGBA whose colour channels are equal (read as grey), and a binary ``0/255`` grey mask (read
    as ``0/1``; in a palette mask 255 stays ``IGNORE``). Values must be class indices ``0..MAX_CLASS_INDEX``
    or ``IGNORE`` (255, unlabelled).

    Args:
        path: the mask file.
        expected_shape: ``(H, W)`` the mask must have (the image's), or ``None`` to skip the check.

    Returns:
        ``uint8`` ``(H, W)`` class map.

    Raises:
        InputError: unreadable file, colour (non-grey) mask, unexpected values, or a shape mismatch; the
            message names the file.

    Shape:
        Output: ``(H, W)``.
    """
    path = Path(path)
    image = _open(path, "mask")
    if image.mode == "P":
        array = np.asarray(image)
    elif image.mode in ("1", "L", "LA"):
        array = np.asarray(image.convert("L"))
    elif image.mode in _SIXTEEN_BIT_MODES:
        raw = np.asarray(image)
        if not np.all(np.isfinite(raw)) or not np.array_equal(raw, np.round(raw)):
            raise InputError(f"mask {path} holds non-integer values; expected class indices")
        array = raw.astype(np.int64)
    else:
        colour = _grey_if_equal(np.asarray(image.convert("RGB")))
        if colour.ndim == 3:
            raise InputError(
                f"mask {path} is a colour image whose channels differ; expected a palette, grey or 0/255 mask"
            )
        array = colour
    if array.ndim != 2:
        raise InputError(f"mask {path} has shape {array.shape}; expected a 2D (H, W) mask")
    if expected_shape is not None and tuple(array.shape) != tuple(int(s) for s in expected_shape[:2]):
        raise InputError(
            f"mask {path} has shape {tuple(array.shape)} but its image has shape "
            f"{tuple(int(s) for s in expected_shape[:2])}"
        )
    values = _distinct_values(array)
    binary = image.mode != "P" and values.size and set(values.tolist()) <= {0, 255} and values[-1] == 255
    if binary:  # a palette mask's 255 is IGNORE (as write_mask_png writes it), a grey one's is foreground
        return (array == 255).astype(np.uint8)
    bad = values[(values > MAX_CLASS_INDEX) & (values != IGNORE)]
    if bad.size or (values.size and values[0] < 0):
        shown = ", ".join(str(int(v)) for v in (bad if bad.size else values[values < 0])[:8])
        more = " ..." if bad.size > 8 else ""
        raise InputError(
            f"mask {path} has unexpected values {shown}{more}; expected class indices 0..{MAX_CLASS_INDEX}, "
            f"{IGNORE} for unlabelled, or a binary 0/255 mask"
        )
    return np.ascontiguousarray(array, dtype=np.uint8)


def _palette() -> list[int]:
    """A fixed 256-colour palette: 0 black, distinct colours for small classes, 255 (IGNORE) white."""
    base = [
        (0, 0, 0),
        (230, 25, 75),
        (60, 180, 75),
        (0, 130, 200),
        (255, 225, 25),
        (145, 30, 180),
        (70, 240, 240),
        (245, 130, 48),
        (240, 50, 230),
        (210, 245, 60),
    ]
    colours = [base[i] if i < len(base) else ((i * 53) % 256, (i * 97) % 256, (i * 193) % 256) for i in range(256)]
    colours[IGNORE] = (255, 255, 255)
    return [channel for colour in colours for channel in colour]


def write_mask_png(path: str | Path, label: np.ndarray) -> Path:
    """Write a class map as a palette PNG (indices preserved, viewable colours) atomically.

    Args:
        path: the PNG to write (parent folders are created).
        label: ``uint8``-compatible ``(H, W)`` class map with values ``0..255``.

    Returns:
        The path written.

    Raises:
        ValueError: ``label`` is not 2D or holds values outside ``0..255``.

    Shape:
        label: ``(H, W)``.
    """
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label must be a 2D (H, W) class map, got shape {label.shape}")
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError(f"label values must lie in 0..255, got {label.min()}..{label.max()}")
    palette_image = Image.fromarray(np.ascontiguousarray(label, dtype=np.uint8))
    palette_image.putpalette(_palette())  # turns the grey image into a palette image, indices unchanged
    buffer = io.BytesIO()
    palette_image.save(buffer, format="PNG", optimize=False)
    return atomic_write_bytes(path, buffer.getvalue())


def write_image_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an image as PNG atomically.

    ``uint8`` grey/RGB/RGBA and ``uint16`` grey are written as they are; any other dtype (e.g. ``float32``
    CT intensities) is rescaled linearly from its finite ``[min, max]`` to ``0..255`` grey levels.

    Args:
        path: the PNG to write (parent folders are created).
        image: ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)``.

    Returns:
        The path written.

    Raises:
        ValueError: ``image`` has an unsupported shape.

    Shape:
        image: ``(H, W)`` or ``(H, W, C)`` with ``C`` in 1, 3, 4.
    """
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ValueError(f"image must be (H, W), (H, W, 3) or (H, W, 4), got shape {array.shape}")
    if array.dtype == np.uint16 and array.ndim == 2:
        pil = Image.fromarray(array)
    else:
        if array.dtype != np.uint8:
            values = array.astype(np.float64)
            finite = values[np.isfinite(values)]
            low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            scale = 255.0 / (high - low) if high > low else 0.0
            values = np.nan_to_num((values - low) * scale, nan=0.0, posinf=255.0, neginf=0.0)
            array = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        pil = Image.fromarray(np.ascontiguousarray(array))
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())
