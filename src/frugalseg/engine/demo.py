"""The built-in demo: synthetic IVUS pullbacks -> train -> evaluate on a held-out pullback -> report folder."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from frugalseg.atomic import atomic_write_json
from frugalseg.data.case import Dataset
from frugalseg.data.phantom import make_phantom_dataset
from frugalseg.engine.config import TrainConfig
from frugalseg.engine.evaluate import evaluate_model
from frugalseg.engine.inference import SegmentationModel
from frugalseg.engine.overlays import write_overlay
from frugalseg.engine.train import train
from frugalseg.errors import InputError

__all__ = ["DEMO_CONFIG", "run_demo"]

DEMO_CONFIG = TrainConfig(model="unet_small", pretrained=False, size=96, epochs=10, min_steps_per_epoch=20, seed=0)
HELD_OUT_PULLBACK = "p03"


def run_demo(out_dir: str | Path, *, log: Callable[[str], Any] = print, num_frames: int = 200) -> dict[str, Any]:
    """Train on three phantom pullbacks, evaluate on the fourth, write overlays and ``metrics.json``."""
    if num_frames < 8:
        raise InputError(f"the demo needs at least 8 phantom frames (4 pullbacks of 2), got {num_frames}")
    out_dir = Path(out_dir)
    started = time.perf_counter()
    phantom = make_phantom_dataset(num_frames=num_frames, size=192, seed=0, frames_per_pullback=num_frames // 4)
    train_set = Dataset(
        cases=[c for c in phantom.cases if c.subject_id != HELD_OUT_PULLBACK],
        class_names=phantom.class_names,
        source_format=phantom.source_format,
        root="phantom",
    )
    test_cases = [c for c in phantom.cases if c.subject_id == HELD_OUT_PULLBACK]
    run_dir = out_dir / "runs" / "supervised"
    shutil.rmtree(run_dir, ignore_errors=True)
    log(f"training {DEMO_CONFIG.model} on {len(train_set)} phantom frames ({DEMO_CONFIG.epochs} epochs)")
    train(
        train_set,
        DEMO_CONFIG,
        run_dir,
        progress=lambda r: log(f"epoch {r['epoch']:2d}/{r['epochs']}  val Dice {r['val_dice']:.3f}"),
    )
    model = SegmentationModel.load(run_dir)
    report = evaluate_model(model, test_cases)
    for case in test_cases[:: max(1, len(test_cases) // 4)]:
        prediction = model.predict([case.image])[0]
        write_overlay(out_dir / "overlays" / f"{case.case_id}.png", case.image, prediction, case.label)
    summary = {
        "supervised": {k: v for k, v in report.items() if k != "cases"},
        "seconds": time.perf_counter() - started,
    }
    atomic_write_json(out_dir / "metrics.json", summary)
    return {"supervised": report, "seconds": summary["seconds"]}
