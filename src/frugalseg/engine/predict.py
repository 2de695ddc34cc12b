"""Predict a folder of images: one label PNG per image at its original size plus per-class probability PNGs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from frugalseg.data.images import IMAGE_SUFFIXES, read_image, write_mask_png
from frugalseg.engine.inference import SegmentationModel
from frugalseg.errors import InputError

__all__ = ["PredictReport", "predict_folder"]


@dataclass
class PredictReport:
    written: int = 0
    failures: list[str] = field(default_factory=list)


def predict_folder(
    run_dir: str | Path,
    images: str | Path,
    out_dir: str | Path,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> PredictReport:
    """Write ``<stem>.png`` (class indices) and ``<stem>_prob_<class>.png`` (probability x 255) per image.

    A file that cannot be read is reported in ``failures`` and skipped; the others are still predicted.
    """
    model = SegmentationModel.load(run_dir)
    files = _image_files(Path(images))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = PredictReport()
    for done, path in enumerate(files, start=1):
        try:
            image = read_image(path)
        except InputError as error:
            report.failures.append(str(error))
            continue
        probabilities = model.predict_probabilities([image])[0]
        write_mask_png(out_dir / f"{path.stem}.png", model.labels_from_probabilities(probabilities))
        for cls in range(1, model.num_classes):
            scaled = np.round(probabilities[cls] * 255).astype(np.uint8)
            write_mask_png(out_dir / f"{path.stem}_prob_{model.class_names[cls]}.png", scaled)
        report.written += 1
        if progress is not None:
            progress(done, len(files))
    return report


def _image_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InputError(f"{path}: no such image file or folder")
    folder = path / "images" if (path / "images").is_dir() else path
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{folder}: no images found (expected {', '.join(sorted(IMAGE_SUFFIXES))} files)")
    return files
