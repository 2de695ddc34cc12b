"""Read and write annotations: one JSON file per dataset for tags/boxes/points, one PNG per case for label maps.

**JSON** (tags, boxes, points), written atomically::

    {
      "format": "frugalseg-annotations",
      "schema_version": 1,
      "cases": {
        "<case_id>": {
          "tags": [1, 2],
          "boxes": [[label, xmin, ymin, xmax, ymax], ...],
          "points": [[row, col, label], ...]
        }
      }
    }

Each case holds any subset of the three fields. Boxes are pixel ``xyxy`` with the maximum exclusive (as
:class:`~frugalseg.data.case.Box`); points are ``(row, col)`` then the label (0 = negative click), see
:mod:`frugalseg.annotations.kinds`. Coordinates must be finite numbers (JSON has no NaN).

**PNG folders** (scribbles, partial labels): ``<folder>/<case_id>.png``, a palette PNG whose indices are the
classes and 255 (``IGNORE``) the unlabelled pixels (a case id with ``/`` becomes a subfolder). In these
folders 255 always means unlabelled, never the foreground of a binary 0/255 mask. A partial-label folder also
holds ``annotated_classes.json`` (``{"format": ..., "schema_version": 1, "annotated_classes": {case_id:
[classes]}}``) since the PNG cannot say which classes were annotated.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from frugalseg.annotations.kinds import Annotation, Boxes, PartialLabels, Point, Points, Scribbles, Tags
from frugalseg.atomic import atomic_write_json
from frugalseg.data.case import Box
from frugalseg.data.images import read_mask, write_mask_png
from frugalseg.errors import InputError

__all__ = [
    "ANNOTATED_CLASSES_NAME",
    "JSON_FORMAT",
    "SCHEMA_VERSION",
    "read_annotations_json",
    "read_partial_labels",
    "read_scribbles",
    "write_annotations_json",
    "write_partial_labels",
    "write_scribbles",
]

JSON_FORMAT = "frugalseg-annotations"
SCHEMA_VERSION = 1
ANNOTATED_CLASSES_NAME = "annotated_classes.json"
_JSON_KINDS = ("tags", "boxes", "points")


# ----------------------------------------------------------------------------------------------- JSON


def _finite(value: float, case_id: str, field: str) -> float | int:
    """A finite coordinate for JSON (whole numbers written without a decimal point)."""
    if not math.isfinite(value):
        raise ValueError(f"case '{case_id}' {field}: coordinate {value} is not finite; JSON cannot hold it")
    return int(value) if float(value).is_integer() else value


def _encode(case_id: str, kind: str, annotation: Annotation) -> list[Any]:
    if annotation.kind != kind:
        raise ValueError(f"case '{case_id}': the entry under '{kind}' is a {annotation.kind} annotation")
    if isinstance(annotation, Tags):
        return list(annotation.classes)
    if isinstance(annotation, Boxes):
        return [
            [int(b.label), *(_finite(float(v), case_id, f"boxes[{i}]") for v in b.as_tuple())]
            for i, b in enumerate(annotation.boxes)
        ]
    if isinstance(annotation, Points):
        return [
            [_finite(p.row, case_id, f"points[{i}]"), _finite(p.col, case_id, f"points[{i}]"), p.label]
            for i, p in enumerate(annotation.points)
        ]
    raise ValueError(
        f"case '{case_id}': {annotation.kind} annotations are label maps; write them with write_scribbles or "
        "write_partial_labels"
    )


def write_annotations_json(path: str | Path, annotations: Mapping[str, Mapping[str, Annotation]]) -> Path:
    """Write the tags, boxes and points of a dataset to one JSON file, atomically.

    Args:
        path: the JSON file to write (parent folders are created).
        annotations: ``{case_id: {kind: annotation}}`` with kinds among ``tags``, ``boxes``, ``points``.

    Returns:
        The path written.

    Raises:
        ValueError: a kind key that does not match its annotation, a label-map kind, or a non-finite
            coordinate (the message names the case).
    """
    cases: dict[str, dict[str, list[Any]]] = {}
    for case_id, by_kind in annotations.items():
        if not isinstance(case_id, str) or not case_id:
            raise ValueError(f"case id {case_id!r}: expected a non-empty string")
        cases[case_id] = {kind: _encode(case_id, kind, annotation) for kind, annotation in by_kind.items()}
    return atomic_write_json(path, {"format": JSON_FORMAT, "schema_version": SCHEMA_VERSION, "cases": cases})


def _number(value: Any, path: Path, case_id: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{path}: case '{case_id}' field {field} is {json.dumps(value)}; expected a number")
    return value


def _integer(value: Any, path: Path, case_id: str, field: str) -> int:
    number = _number(value, path, case_id, field)
    if not float(number).is_integer():
        raise InputError(f"{path}: case '{case_id}' field {field} is {json.dumps(value)}; expected an integer")
    return int(number)


def _items(value: Any, path: Path, case_id: str, field: str, width: int, layout: str) -> list[list[Any]]:
    if not isinstance(value, list):
        raise InputError(f"{path}: case '{case_id}' field {field} is not a list; expected {layout}")
    for index, item in enumerate(value):
        if not isinstance(item, list) or len(item) != width:
            raise InputError(
                f"{path}: case '{case_id}' field {field}[{index}] is {json.dumps(item)}; expected {layout}"
            )
    return value


def _decode(raw: Any, path: Path, case_id: str) -> dict[str, Annotation]:
    if not isinstance(raw, dict):
        raise InputError(f"{path}: case '{case_id}' is not an object; expected {{'tags'|'boxes'|'points': ...}}")
    out: dict[str, Annotation] = {}
    for field, value in raw.items():
        if field == "tags":
            if not isinstance(value, list):
                raise InputError(f"{path}: case '{case_id}' field tags is not a list; expected [class, ...]")
            out["tags"] = Tags(tuple(_integer(v, path, case_id, f"tags[{i}]") for i, v in enumerate(value)))
        elif field == "boxes":
            rows = _items(value, path, case_id, "boxes", 5, "[[label, xmin, ymin, xmax, ymax], ...]")
            boxes = []
            for i, row in enumerate(rows):
                label = _integer(row[0], path, case_id, f"boxes[{i}][0] (label)")
                xmin, ymin, xmax, ymax = (
                    _number(v, path, case_id, f"boxes[{i}][{j + 1}]") for j, v in enumerate(row[1:])
                )
                boxes.append(Box(xmin=xmin, ymin=ymin, xmax=xmax, ymax=ymax, label=label))
            out["boxes"] = Boxes(tuple(boxes))
        elif field == "points":
            rows = _items(value, path, case_id, "points", 3, "[[row, col, label], ...]")
            out["points"] = Points(
                tuple(
                    Point(
                        _number(row[0], path, case_id, f"points[{i}][0] (row)"),
                        _number(row[1], path, case_id, f"points[{i}][1] (col)"),
                        _integer(row[2], path, case_id, f"points[{i}][2] (label)"),
                    )
                    for i, row in enumerate(rows)
                )
            )
        else:
            raise InputError(
                f"{path}: case '{case_id}' has unknown field '{field}'; expected tags, boxes or points "
                "(scribbles and partial labels are PNG folders)"
            )
    return out


def read_annotations_json(path: str | Path) -> dict[str, dict[str, Annotation]]:
    """Read the tags, boxes and points written by :func:`write_annotations_json`.

    Args:
        path: the JSON file.

    Returns:
        ``{case_id: {kind: annotation}}`` in file order.

    Raises:
        InputError: a missing or unparsable file, a newer schema, or a malformed entry; the message names
            the file, the case and the field.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"annotation file not found: {path}")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error.msg} at line {error.lineno} column {error.colno})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text; expected a JSON annotation file") from None
    if not isinstance(document, dict) or not isinstance(document.get("cases"), dict):
        raise InputError(f"{path}: expected an object with 'schema_version' and 'cases' ({JSON_FORMAT})")
    version = document.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise InputError(f"{path}: schema_version is {json.dumps(version)}; expected an integer")
    if version > SCHEMA_VERSION:
        raise InputError(
            f"{path}: schema_version {version} is newer than this frugalseg reads ({SCHEMA_VERSION}); upgrade"
        )
    return {str(case_id): _decode(raw, path, str(case_id)) for case_id, raw in document["cases"].items()}


# ------------------------------------------------------------------------------------------ PNG folders


def _case_path(folder: Path, case_id: str) -> Path:
    parts = case_id.split("/")
    if not case_id or any(part in ("", ".", "..") for part in parts) or "\\" in case_id:
        raise ValueError(f"case id {case_id!r} cannot name a file; expected a relative name without '..'")
    return folder.joinpath(*parts[:-1], f"{parts[-1]}.png")


def _read_label_png(path: Path, expected_shape: Sequence[int] | None) -> np.ndarray:
    """A label PNG as stored: ``read_mask`` validates it, but 255 stays ``IGNORE`` (no 0/255 -> 0/1)."""
    label = read_mask(path, expected_shape=expected_shape)
    with Image.open(path) as image:
        if image.mode in ("P", "L"):
            return np.ascontiguousarray(np.asarray(image), dtype=np.uint8)
        if image.mode in ("LA", "RGB", "RGBA"):  # grey in colour clothing (read_mask checked the channels)
            return np.ascontiguousarray(np.asarray(image.convert("RGB"))[..., 0], dtype=np.uint8)
    return label


def _png_cases(folder: Path) -> list[tuple[str, Path]]:
    if not folder.is_dir():
        raise InputError(f"label folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*.png") if not any(part.startswith(".") for part in p.parts))
    return [(p.relative_to(folder).with_suffix("").as_posix(), p) for p in files]


def write_scribbles(folder: str | Path, scribbles: Mapping[str, Scribbles]) -> list[Path]:
    """Write one palette PNG per case (``<folder>/<case_id>.png``, 255 unlabelled), each atomically.

    Returns:
        The paths written, in the order of ``scribbles``.
    """
    folder = Path(folder)
    paths = []
    for case_id, annotation in scribbles.items():
        if not isinstance(annotation, Scribbles):
            raise ValueError(f"case '{case_id}': expected Scribbles, got {type(annotation).__name__}")
        paths.append(write_mask_png(_case_path(folder, case_id), annotation.label))
    return paths


def read_scribbles(
    folder: str | Path, *, expected_shapes: Mapping[str, Sequence[int]] | None = None
) -> dict[str, Scribbles]:
    """Read every ``*.png`` under ``folder`` as the scribbles of the case named by its relative path.

    Args:
        folder: the folder written by :func:`write_scribbles` (or by an annotation tool, same encoding).
        expected_shapes: ``{case_id: (H, W)}`` to check each PNG against its image; cases not named are not
            checked.

    Raises:
        InputError: a missing folder, an unreadable PNG, values that are not classes or 255, or a shape
            that differs from the expected one (the message names the file).
    """
    shapes = expected_shapes or {}
    return {
        case_id: Scribbles(_read_label_png(path, shapes.get(case_id))) for case_id, path in _png_cases(Path(folder))
    }


def write_partial_labels(folder: str | Path, partial: Mapping[str, PartialLabels]) -> list[Path]:
    """Write one palette PNG per case plus ``annotated_classes.json``, each atomically.

    Returns:
        The paths written (the PNGs in the order of ``partial``, then the JSON index).
    """
    folder = Path(folder)
    paths = []
    classes: dict[str, list[int]] = {}
    for case_id, annotation in partial.items():
        if not isinstance(annotation, PartialLabels):
            raise ValueError(f"case '{case_id}': expected PartialLabels, got {type(annotation).__name__}")
        paths.append(write_mask_png(_case_path(folder, case_id), annotation.label))
        classes[case_id] = list(annotation.annotated_classes)
    index = {"format": JSON_FORMAT, "schema_version": SCHEMA_VERSION, "annotated_classes": classes}
    paths.append(atomic_write_json(folder / ANNOTATED_CLASSES_NAME, index))
    return paths


def read_partial_labels(
    folder: str | Path, *, expected_shapes: Mapping[str, Sequence[int]] | None = None
) -> dict[str, PartialLabels]:
    """Read a folder written by :func:`write_partial_labels`.

    Raises:
        InputError: a missing or malformed ``annotated_classes.json``, a PNG it does not list (or a listed
            case without PNG), an unreadable PNG, or a shape mismatch; the message names the file and case.
    """
    folder = Path(folder)
    cases = _png_cases(folder)
    index_path = folder / ANNOTATED_CLASSES_NAME
    if not index_path.is_file():
        raise InputError(f"{folder} lacks {ANNOTATED_CLASSES_NAME}; it says which classes each PNG annotates")
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{index_path}: not valid JSON ({type(error).__name__})") from None
    table = index.get("annotated_classes") if isinstance(index, dict) else None
    if not isinstance(table, dict):
        raise InputError(f"{index_path}: expected an object with 'annotated_classes': {{case_id: [classes]}}")
    version = index.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise InputError(f"{index_path}: schema_version {version} is newer than this frugalseg reads")
    missing = sorted(set(table) - {case_id for case_id, _ in cases})
    if missing:
        raise InputError(f"{index_path} lists case '{missing[0]}' but {folder} has no {missing[0]}.png")
    shapes = expected_shapes or {}
    out: dict[str, PartialLabels] = {}
    for case_id, path in cases:
        if case_id not in table:
            raise InputError(f"{path}: case '{case_id}' is not listed in {index_path}")
        raw = table[case_id]
        if not isinstance(raw, list):
            raise InputError(f"{index_path}: case '{case_id}' annotated_classes is not a list of classes")
        classes = tuple(_integer(v, index_path, case_id, f"annotated_classes[{i}]") for i, v in enumerate(raw))
        if any(c < 1 for c in classes):
            raise InputError(f"{index_path}: case '{case_id}' annotated_classes {list(classes)}; expected classes >= 1")
        out[case_id] = PartialLabels(_read_label_png(path, shapes.get(case_id)), classes)
    return out
