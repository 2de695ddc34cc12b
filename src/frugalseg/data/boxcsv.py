"""Reader of box annotations in the CSV layout Roboflow exports as "Tensorflow Object Detection".

Layout: ``_annotations.csv`` (``filename,width,height,class,xmin,ymin,xmax,ymax``, one row per box) beside
its images, in ``root`` and/or in split subfolders ``train/``, ``valid/`` (or ``val/``), ``test/``. Images in
those folders that no row names are read too, without boxes (``metadata['box_annotated']=False``).

Subjects: frames of one sequence must share a subject. The exported name is first cut back to the original
stem (Roboflow appends ``_png.rf.<hash>``); a stem with two or more numbers keeps everything up to its first
number as the subject (``frame_01_0001_005`` -> ``frame_01``, the pullback); a stem with one number or none
is its own subject.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from frugalseg.data.case import Box, Case, Dataset
from frugalseg.data.images import is_image_file, read_image
from frugalseg.errors import InputError

__all__ = ["BOX_CSV_NAME", "original_stem", "read_box_csv", "subject_from_stem"]

BOX_CSV_NAME = "_annotations.csv"

_SPLITS = {"train": "train", "valid": "val", "val": "val", "validation": "val", "test": "test"}
_COLUMNS = ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax")
_ROBOFLOW = re.compile(r"^(?P<stem>.+?)(?:_(?:png|jpg|jpeg|bmp|tif|tiff))?\.rf\.[0-9a-f]{8,}$", re.IGNORECASE)
_FIRST_NUMBER = re.compile(r"^(?P<head>\D*\d+)")


def original_stem(filename: str) -> str:
    """The file's stem before a Roboflow export renamed it (``a_png.rf.3f2c...jpg`` -> ``a``)."""
    stem = Path(filename).stem
    match = _ROBOFLOW.match(stem)
    return match.group("stem") if match else stem


def subject_from_stem(stem: str) -> str:
    """Subject of a frame: the stem up to its first number when it has two or more numbers, else the stem."""
    if len(re.findall(r"\d+", stem)) >= 2:
        match = _FIRST_NUMBER.match(stem)
        if match:
            return match.group("head").rstrip("_-")
    return stem


def _read_rows(csv_path: Path) -> list[tuple[int, dict[str, str]]]:
    """Rows as ``(line number, {column: value})`` after checking the header."""
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [cell.strip().lower() for cell in next(reader, [])]
        missing = [name for name in _COLUMNS if name not in header]
        if missing:
            raise InputError(f"box table {csv_path} lacks columns {missing}; expected {','.join(_COLUMNS)}")
        rows = []
        for line, row in enumerate(reader, start=2):
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                raise InputError(f"box table {csv_path} line {line} has {len(row)} fields; expected {len(header)}")
            rows.append((line, {name: row[i].strip() for i, name in enumerate(header)}))
    return rows


def _number(value: str, csv_path: Path, line: int, column: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise InputError(f"box table {csv_path} line {line}: {column} '{value}' is not a number") from None


def read_box_csv(root: str | Path) -> Dataset:
    """Read images with box annotations from ``_annotations.csv`` files.

    Args:
        root: folder with ``_annotations.csv`` and/or subfolders ``train/``, ``valid/``, ``test/`` with one.

    Returns:
        A :class:`Dataset` whose class names are ``background`` then the table's classes sorted. Each case:
        ``label=None``, ``boxes`` (pixel ``xyxy``, ``label`` the class index), ``split`` from its subfolder
        (``train``/``val``/``test``, ``None`` in root), ``spacing=(1.0, 1.0)`` (unknown), ``case_id`` the
        original stem (see :func:`original_stem`), ``subject_id`` from :func:`subject_from_stem`.

    Raises:
        InputError: a missing image, a width/height that differs from the image's, an empty box or one outside
            the image, a malformed table; the message names the table, the line and the file.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"box dataset folder not found: {root}")
    tables: list[tuple[Path, str | None]] = []
    if (root / BOX_CSV_NAME).is_file():
        tables.append((root / BOX_CSV_NAME, None))
    for name, folder_split in _SPLITS.items():
        if (root / name / BOX_CSV_NAME).is_file():
            tables.append((root / name / BOX_CSV_NAME, folder_split))
    if not tables:
        raise InputError(f"folder {root} has no {BOX_CSV_NAME} (in itself or in train/, valid/, test/)")

    parsed: list[tuple[Path, str | None, list[tuple[int, dict[str, str]]]]] = []
    class_set: set[str] = set()
    for csv_path, split in tables:
        rows = _read_rows(csv_path)
        class_set.update(row["class"] for _, row in rows)
        parsed.append((csv_path, split, rows))
    class_names = ["background", *sorted(class_set - {"background"})]
    class_index = {name: index for index, name in enumerate(class_names)}

    cases: list[Case] = []
    used_ids: set[str] = set()
    for csv_path, split, rows in parsed:
        folder = csv_path.parent
        by_file: dict[str, list[tuple[int, dict[str, str]]]] = {}
        for line, row in rows:
            by_file.setdefault(row["filename"], []).append((line, row))
        names = sorted(set(by_file) | {p.name for p in folder.iterdir() if p.is_file() and is_image_file(p)})
        for filename in names:
            image_path = folder / filename
            first_line = by_file[filename][0][0] if filename in by_file else 0
            if not image_path.is_file():
                raise InputError(f"box table {csv_path} line {first_line} names {filename}, which is not in {folder}")
            image = read_image(image_path)
            height, width = image.shape[:2]
            boxes: list[Box] = []
            for line, row in by_file.get(filename, []):
                values = {column: _number(row[column], csv_path, line, column) for column in _COLUMNS[4:]}
                values.update({column: _number(row[column], csv_path, line, column) for column in _COLUMNS[1:3]})
                if (values["width"], values["height"]) != (width, height):
                    raise InputError(
                        f"box table {csv_path} line {line}: {filename} is {width}x{height} but the row says "
                        f"{values['width']:g}x{values['height']:g}"
                    )
                xmin, ymin, xmax, ymax = values["xmin"], values["ymin"], values["xmax"], values["ymax"]
                if not (xmin < xmax and ymin < ymax):
                    raise InputError(
                        f"box table {csv_path} line {line}: box ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) of "
                        f"{filename} is empty; expected xmin < xmax and ymin < ymax"
                    )
                if xmin < 0 or ymin < 0 or xmax > width or ymax > height:
                    raise InputError(
                        f"box table {csv_path} line {line}: box ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) of "
                        f"{filename} leaves the {width}x{height} image"
                    )
                boxes.append(Box(xmin=xmin, ymin=ymin, xmax=xmax, ymax=ymax, label=class_index[row["class"]]))
            stem = original_stem(filename)
            case_id = stem if stem not in used_ids else Path(filename).stem
            if case_id in used_ids:
                case_id = f"{folder.name}/{Path(filename).stem}"
            used_ids.add(case_id)
            metadata: dict[str, Any] = {
                "image_path": str(image_path),
                "csv_path": str(csv_path),
                "original_stem": stem,
                "box_annotated": filename in by_file,
                "spacing_known": False,
            }
            cases.append(
                Case(
                    case_id=case_id,
                    subject_id=subject_from_stem(stem),
                    image=image,
                    boxes=boxes,
                    split=split,
                    metadata=metadata,
                )
            )
    if not cases:
        raise InputError(f"box tables under {root} name no images")
    return Dataset(cases=cases, class_names=class_names, source_format="boxcsv", root=str(root))
