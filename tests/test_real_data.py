"""The readers on the real datasets in ``FRUGAL_DATA`` (default ``../shared/data``); skipped when absent."""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from frugalseg.data import detect_format, fill_ellipse_outline, read_dataset, read_mask, split_by_subject


def _data_root() -> Path:
    return Path(os.environ.get("FRUGAL_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def _need(relative: str) -> Path:
    path = _data_root() / relative
    if not path.is_dir():
        pytest.skip(f"real data {path} is absent (set FRUGAL_DATA to the shared data folder)")
    return path


def _values(dataset_cases: list) -> set[int]:
    values: set[int] = set()
    for case in dataset_cases:
        values.update(int(v) for v in np.unique(case.label))
    return values


def test_ph2() -> None:
    root = _need("ph2")
    assert detect_format(root) == "folder"
    dataset = read_dataset(root)
    assert len(dataset) == 30
    assert all(case.label is not None and case.image.ndim == 3 for case in dataset.cases)
    assert _values(dataset.cases) == {0, 1}
    assert Counter(case.tags[0] for case in dataset.cases if case.tags) == {0: 12, 1: 12, 2: 6}


def test_usgra() -> None:
    root = _need("usgra/dataset")
    dataset = read_dataset(root)
    assert Counter(case.split for case in dataset.cases) == {None: 204, "test": 40}
    assert all(case.label is not None for case in dataset.cases)
    assert _values(dataset.cases) == {0, 1, 2}
    assert dataset.num_classes == 3


def test_ivus_volcano() -> None:
    root = _need("ivus_volcano/BL")
    assert detect_format(root) == "echoplaque"
    dataset = read_dataset(root)
    assert len(dataset) == 11
    assert {case.subject_id for case in dataset.cases} == {"BL"}
    for case in dataset.cases:
        assert case.image.shape == (500, 500) and case.spacing == (0.02, 0.02)
        assert case.label is not None and set(np.unique(case.label).tolist()) == {0, 1, 2}
        lumen_mm2 = float((case.label == 1).sum()) * 0.02 * 0.02
        assert 1.0 < lumen_mm2 < 30.0  # a coronary lumen area, mm^2
    _, held = split_by_subject(dataset.cases, holdout_fraction=0.3, seed=0)
    frames = [case.metadata["frame"] for case in held]
    assert frames == list(range(frames[0], frames[0] + len(frames)))  # one pullback: a contiguous block


def test_ivus_boxes() -> None:
    root = _need("ivus_2011b_lumen_boxes")
    assert detect_format(root) == "boxcsv"
    dataset = read_dataset(root)
    assert Counter(case.split for case in dataset.cases) == {"train": 70, "val": 20, "test": 10}
    assert len({case.case_id for case in dataset.cases}) == 100
    assert all(len(case.boxes) == 1 and case.label is None for case in dataset.cases)
    assert len({case.subject_id for case in dataset.cases}) == 1  # frames of one sequence
    assert dataset.class_names == ["background", "Lumen"]


def test_hc18_fit_equals_fill_on_closed_outlines() -> None:
    root = _need("hc18")
    annotations = sorted((root / "training_set").glob("*_Annotation.png"))[::25]
    for path in annotations:
        outline = read_mask(path) > 0
        filled = ndimage.binary_fill_holes(outline)
        if filled.sum() < 3 * outline.sum():
            continue  # an open outline: hole filling fails there, the fit does not
        mask, method, _ = fill_ellipse_outline(outline)
        assert method == "ellipse_fit"
        dice = 2 * np.logical_and(mask, filled).sum() / (mask.sum() + filled.sum())
        assert dice > 0.99, path.name


@pytest.mark.slow
def test_hc18_all() -> None:
    root = _need("hc18")
    assert detect_format(root) == "hc18"
    dataset = read_dataset(root)
    assert len(dataset) == 679
    assert len({case.subject_id for case in dataset.cases}) == 550
    errors = []
    for case in dataset.cases:
        assert case.image.dtype == np.uint8 and case.label is not None
        # the circumference of the fitted ellipse (Ramanujan) against the reference HC of the table
        _, _, a, b, _ = case.metadata["ellipse"]
        h = ((a - b) / (a + b)) ** 2
        perimeter = math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))
        errors.append(abs(perimeter * case.spacing[0] - case.metadata["hc_mm"]))
    assert max(errors) < 0.5  # mm
