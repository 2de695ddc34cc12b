"""Pseudo-label folders: one label PNG per case plus optional confidences, for ``--labels pseudo:DIR``.

Layout (any tool can write it: a foundation model, another network, an annotator's rough masks)::

    DIR/<case_id>.png        palette PNG, class indices, 255 (IGNORE) where unknown
    DIR/confidence.json      optional: {"format": "frugalseg-pseudo-labels", "schema_version": 1,
                                        "cases": {"<case_id>": 0.8, "<other>": {"1": 0.9, "2": 0.4}}}

A case's confidence is either one number (every pixel of the case) or one number per class (the pixels
labelled with that class; classes not listed get 1). Confidences lie in ``[0, 1]`` and become the per-pixel
weights of the training loss. The PNGs use the encoding of :func:`frugalseg.annotations.write_scribbles`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from frugalseg.annotations.io import read_scribbles, write_scribbles
from frugalseg.annotations.kinds import Scribbles
from frugalseg.atomic import atomic_write_json
from frugalseg.data.case import IGNORE
from frugalseg.errors import InputError

__all__ = ["CONFIDENCE_NAME", "PseudoLabel", "read_pseudo_labels", "write_pseudo_labels"]

CONFIDENCE_NAME = "confidence.json"
FORMAT = "frugalseg-pseudo-labels"
SCHEMA_VERSION = 1

Confidence = float | Mapping[int, float]


@dataclass(frozen=True, eq=False)
class PseudoLabel:
    """A pseudo-label map and its per-pixel weight.

    Attributes:
        label: ``(H, W)`` ``uint8``, ``IGNORE`` where unknown.
        weight: ``(H, W)`` ``float32`` in ``[0, 1]``, 0 on ``IGNORE`` pixels.
    """

    label: np.ndarray
    weight: np.ndarray


def _weights(label: np.ndarray, confidence: Confidence | None) -> np.ndarray:
    weight = np.ones(label.shape, dtype=np.float32)
    if isinstance(confidence, Mapping):
        for c, value in confidence.items():
            weight[label == int(c)] = float(value)
    elif confidence is not None:
        weight[:] = float(confidence)
    weight[label == IGNORE] = 0.0
    return weight


def _check_value(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and 0 <= value <= 1):
        raise InputError(f"{where}: confidence {value!r}; expected a number in [0, 1]")
    return float(value)


def write_pseudo_labels(
    folder: str | Path,
    labels: Mapping[str, np.ndarray],
    *,
    confidence: Mapping[str, Confidence] | None = None,
) -> list[Path]:
    """Write one PNG per case and, when given, ``confidence.json``, each atomically.

    Returns:
        The paths written.
    """
    folder = Path(folder)
    paths = write_scribbles(folder, {case_id: Scribbles(label) for case_id, label in labels.items()})
    if confidence:
        cases: dict[str, Any] = {}
        for case_id, value in confidence.items():
            if isinstance(value, Mapping):
                cases[case_id] = {str(int(c)): _check_value(v, f"case '{case_id}'") for c, v in value.items()}
            else:
                cases[case_id] = _check_value(value, f"case '{case_id}'")
        document = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "cases": cases}
        paths.append(atomic_write_json(folder / CONFIDENCE_NAME, document))
    return paths


def read_pseudo_labels(
    folder: str | Path, *, expected_shapes: Mapping[str, Sequence[int]] | None = None
) -> dict[str, PseudoLabel]:
    """Read a pseudo-label folder (see the module docstring).

    Raises:
        InputError: a missing folder, an unreadable PNG, a shape mismatch, or a malformed ``confidence.json``
            (the message names the file and the case).
    """
    folder = Path(folder)
    maps = read_scribbles(folder, expected_shapes=expected_shapes)
    path = folder / CONFIDENCE_NAME
    table: dict[str, Any] = {}
    if path.is_file():
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise InputError(f"{path}: not valid JSON ({type(error).__name__})") from None
        if not isinstance(document, dict) or not isinstance(document.get("cases"), dict):
            raise InputError(f"{path}: expected an object with 'cases': {{case_id: confidence}}")
        version = document.get("schema_version")
        if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
            raise InputError(f"{path}: schema_version {version} is newer than this frugalseg reads")
        table = document["cases"]
    out: dict[str, PseudoLabel] = {}
    for case_id, scribbles in maps.items():
        raw = table.get(case_id)
        confidence: Confidence | None
        if isinstance(raw, dict):
            try:
                confidence = {int(c): _check_value(v, f"{path} case '{case_id}'") for c, v in raw.items()}
            except ValueError as error:
                if isinstance(error, InputError):
                    raise
                raise InputError(f"{path} case '{case_id}': class keys must be integers") from None
        else:
            confidence = None if raw is None else _check_value(raw, f"{path} case '{case_id}'")
        label = np.array(scribbles.label)
        out[case_id] = PseudoLabel(label=label, weight=_weights(label, confidence))
    unknown = sorted(set(table) - set(maps))
    if unknown:
        raise InputError(f"{path} names case '{unknown[0]}' but {folder} has no {unknown[0]}.png")
    return out
