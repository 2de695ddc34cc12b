"""Reader of IVUS pullbacks annotated in Echoplaque (INDEC Medical Systems) XML.

Layout: a folder with one Echoplaque XML (root element ``AnalysisState``, e.g. ``BL_data.xml``) and the frames
as ``k.jpg`` (or ``k.png``) where ``k`` is the frame's ``<Num>``; or a folder of such folders (one per
pullback). Per frame the XML holds contours ``<Ctr><Type>L|V</Type><p>x,y</p>...</Ctr>``: ``L`` the lumen,
``V`` the vessel (external elastic membrane). The points are image pixel coordinates as they stand; the
header's ``Xoffset``/``Yoffset`` are *not* applied.

Label values: 0 background (outside the vessel), 1 lumen (inside ``L``), 2 vessel wall (inside ``V``,
outside ``L``). A frame with only a lumen contour gets 1 inside it and ``IGNORE`` elsewhere (the wall's extent
is unknown); a frame with only a vessel contour gets 0 outside it and ``IGNORE`` inside.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from frugalseg.data.case import IGNORE, Case, Dataset
from frugalseg.data.images import read_image
from frugalseg.errors import InputError

__all__ = ["ECHOPLAQUE_CLASSES", "contours_to_label", "find_echoplaque_xml", "read_echoplaque"]

ECHOPLAQUE_CLASSES = ["background", "lumen", "vessel_wall"]

_FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")

Contour = list[tuple[float, float]]


def find_echoplaque_xml(folder: Path) -> Path | None:
    """The Echoplaque XML of ``folder`` (an ``.xml`` whose root element is ``AnalysisState``), if any."""
    for path in sorted(folder.glob("*.xml")) + sorted(folder.glob("*.XML")):
        try:
            with open(path, "rb") as handle:
                head = handle.read(4096)
        except OSError:
            continue
        if b"<AnalysisState" in head:
            return path
    return None


def _polygon_mask(contour: Contour, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centres lie inside the closed polygon through ``contour`` ``(x, y)`` points.

    Even-odd scanline fill: for every pixel row, the polygon edges crossing the row's centre line toggle the
    inside state at the first pixel centre right of the crossing (edges are half-open in ``y``, so a vertex
    on the line counts once). Vectorised over rows and edges; fast for contours of hundreds of points.
    """
    height, width = shape
    mask = np.zeros(shape, dtype=bool)
    points = np.asarray(contour, dtype=np.float64)
    if len(points) < 3:
        return mask
    x0, y0 = points[:, 0], points[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    first, last = max(0, int(np.ceil(y0.min()))), min(height - 1, int(np.floor(y0.max())))
    if first > last:
        return mask
    rows = np.arange(first, last + 1, dtype=np.float64)[:, None]
    crossing = (rows >= np.minimum(y0, y1)) & (rows < np.maximum(y0, y1))
    row_index, edge = np.nonzero(crossing)
    y = rows[row_index, 0]
    x = x0[edge] + (y - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
    column = np.clip(np.ceil(x), 0, width).astype(np.int64)
    toggles = np.zeros((len(rows), width + 1), dtype=np.int32)
    np.add.at(toggles, (row_index, column), 1)
    mask[first : last + 1] = (np.cumsum(toggles, axis=1)[:, :width] % 2).astype(bool)
    return mask


def contours_to_label(contours: dict[str, list[Contour]], shape: tuple[int, int]) -> np.ndarray | None:
    """Rasterise lumen (``L``) and vessel (``V``) contours into a class map.

    Args:
        contours: ``{"L": [contour, ...], "V": [...]}``, each contour a list of ``(x, y)`` pixel coordinates.
        shape: ``(H, W)`` of the frame.

    Returns:
        ``uint8`` ``(H, W)`` map (0 background, 1 lumen, 2 vessel wall, ``IGNORE`` where unknown), or ``None``
        when there is neither an ``L`` nor a ``V`` contour.

    Shape:
        Output: ``(H, W)``.
    """
    lumen = [c for c in contours.get("L", []) if len(c) >= 3]
    vessel = [c for c in contours.get("V", []) if len(c) >= 3]
    if not lumen and not vessel:
        return None
    inside_lumen = np.zeros(shape, dtype=bool)
    for contour in lumen:
        inside_lumen |= _polygon_mask(contour, shape)
    inside_vessel = np.zeros(shape, dtype=bool)
    for contour in vessel:
        inside_vessel |= _polygon_mask(contour, shape)
    if vessel and lumen:
        label = np.zeros(shape, dtype=np.uint8)
        label[inside_vessel] = 2
    elif vessel:
        label = np.zeros(shape, dtype=np.uint8)
        label[inside_vessel] = IGNORE
    else:
        label = np.full(shape, IGNORE, dtype=np.uint8)
    label[inside_lumen] = 1
    return label


def _parse_point(text: str, xml_path: Path, frame: int) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"Echoplaque XML {xml_path} frame {frame}: cannot read point '{text}' as x,y") from None
    return (x, y)


def _parse_xml(xml_path: Path) -> tuple[dict[int, dict[str, list[Contour]]], tuple[float, float] | None]:
    """``frame number -> {type: [contours]}`` and the ``(row, col)`` calibration in mm/px (if present)."""
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputError(f"cannot read Echoplaque XML {xml_path}: {exc}") from None
    spacing = None
    x_cal, y_cal = root.findtext(".//XCalibration"), root.findtext(".//YCalibration")
    if x_cal and y_cal:
        try:
            spacing = (float(y_cal), float(x_cal))
        except ValueError:
            raise InputError(f"Echoplaque XML {xml_path}: calibration '{x_cal}', '{y_cal}' is not numeric") from None
        if not (spacing[0] > 0 and spacing[1] > 0):
            spacing = None
    frames: dict[int, dict[str, list[Contour]]] = {}
    for element in root.iter("Fm"):
        number_text = (element.findtext("Num") or "").strip()
        if not number_text.lstrip("-").isdigit():
            raise InputError(f"Echoplaque XML {xml_path}: frame number '{number_text}' is not an integer")
        frame = int(number_text)
        contours = frames.setdefault(frame, {})
        for ctr in element.findall("Ctr"):
            kind = (ctr.findtext("Type") or "").strip() or "?"
            points = [_parse_point(p.text or "", xml_path, frame) for p in ctr.findall("p")]
            contours.setdefault(kind, []).append(points)
    return frames, spacing


def _frame_images(folder: Path) -> dict[int, Path]:
    images: dict[int, Path] = {}
    for path in folder.iterdir():
        if path.is_file() and path.suffix.lower() in _FRAME_SUFFIXES and path.stem.isdigit():
            images.setdefault(int(path.stem), path)
    return images


def _read_pullback(folder: Path, xml_path: Path) -> list[Case]:
    frames, spacing = _parse_xml(xml_path)
    images = _frame_images(folder)
    missing = sorted(set(frames) - set(images))
    if missing:
        raise InputError(
            f"Echoplaque XML {xml_path} has contours for frame {missing[0]} but {folder} has no image {missing[0]}.jpg"
        )
    subject = folder.name
    cases: list[Case] = []
    for number in sorted(images):
        image = read_image(images[number])
        contours = frames.get(number, {})
        label = contours_to_label(contours, (image.shape[0], image.shape[1]))
        metadata: dict[str, Any] = {
            "image_path": str(images[number]),
            "xml_path": str(xml_path),
            "frame": number,
            "spacing_known": spacing is not None,
            "contours": contours,
        }
        cases.append(
            Case(
                case_id=f"{subject}_{number:04d}",
                subject_id=subject,
                image=image,
                spacing=spacing if spacing is not None else (1.0, 1.0),
                label=label,
                metadata=metadata,
            )
        )
    return cases


def read_echoplaque(root: str | Path) -> Dataset:
    """Read one IVUS pullback (or a folder of pullbacks) annotated in Echoplaque XML.

    Args:
        root: a folder with an Echoplaque XML and frames ``k.jpg``, or a folder whose subfolders are such.

    Returns:
        A :class:`Dataset` with classes ``['background', 'lumen', 'vessel_wall']``, frames in order. Each
        case: ``case_id`` ``f"{folder}_{k:04d}"``, ``subject_id`` the pullback folder's name, spacing
        ``(YCalibration, XCalibration)`` mm/px, ``label`` ``None`` for frames without contours, and
        ``metadata['contours']`` the raw contours ``{"L": [[(x, y), ...], ...], "V": [...]}`` in pixels
        (plus ``frame``, ``image_path``, ``xml_path``).

    Raises:
        InputError: no Echoplaque XML, an unreadable XML or frame, contours for a frame with no image.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"Echoplaque folder not found: {root}")
    pullbacks: list[tuple[Path, Path]] = []
    own = find_echoplaque_xml(root)
    if own is not None:
        pullbacks.append((root, own))
    else:
        for sub in sorted(path for path in root.iterdir() if path.is_dir()):
            xml_path = find_echoplaque_xml(sub)
            if xml_path is not None:
                pullbacks.append((sub, xml_path))
    if not pullbacks:
        raise InputError(f"folder {root} has no Echoplaque XML (root element AnalysisState) nor subfolders with one")
    cases = [case for folder, xml_path in pullbacks for case in _read_pullback(folder, xml_path)]
    if not cases:
        raise InputError(f"Echoplaque folder {root} has no frame images k.jpg")
    return Dataset(cases=cases, class_names=list(ECHOPLAQUE_CLASSES), source_format="echoplaque", root=str(root))
