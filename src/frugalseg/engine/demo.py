"""The built-in demo on synthetic IVUS pullbacks: full vs scribble supervision, then a short SQA loop.

Three phantom pullbacks train, the fourth is held out. The same network and schedule learn from full masks
and from simulated scribbles (partial CE + CRF loss); both are evaluated on the held-out pullback. A short
active-learning loop of the SQA network (worst predicted quality first, simulated expert correcting the
predicted error regions) ends the demo. Everything lands in ``out_dir``: overlays, ``metrics.json`` and runs.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from frugalseg.atomic import atomic_write_json
from frugalseg.data.phantom import make_phantom_dataset
from frugalseg.engine.al_run import run_al
from frugalseg.engine.config import TrainConfig
from frugalseg.engine.evaluate import evaluate_model
from frugalseg.engine.inference import SegmentationModel
from frugalseg.engine.overlays import write_overlay
from frugalseg.engine.train import train
from frugalseg.engine.weak_config import WeakConfig
from frugalseg.engine.weak_train import train_weak
from frugalseg.errors import InputError

__all__ = ["DEMO_CONFIG", "DEMO_WEAK", "run_demo"]

DEMO_CONFIG = TrainConfig(model="unet_small", pretrained=False, size=96, epochs=8, min_steps_per_epoch=16, seed=0)
DEMO_WEAK = WeakConfig(labels="scribbles")
HELD_OUT_PULLBACK = "p03"
AL_SETTINGS: dict[str, Any] = {
    "strategy": "sqa",
    "initial": 8,
    "batch": 8,
    "rounds": 2,
    "size": 64,
    "epochs_per_round": 4,
    "min_steps": 12,
}


def _without_cases(report: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in report.items() if key != "cases"}


def run_demo(out_dir: str | Path, *, log: Callable[[str], Any] = print, num_frames: int = 200) -> dict[str, Any]:
    """Run the demo into ``out_dir``.

    Returns:
        ``{"supervised": report, "weak": report, "active_learning": [round records], "seconds"}`` with the
        evaluation reports of :func:`~frugalseg.engine.evaluate.evaluate_model` on the held-out pullback.
    """
    if num_frames < 8:
        raise InputError(f"the demo needs at least 8 phantom frames (4 pullbacks of 2), got {num_frames}")
    out_dir = Path(out_dir)
    started = time.perf_counter()
    phantom = make_phantom_dataset(num_frames=num_frames, size=192, seed=0, frames_per_pullback=num_frames // 4)
    train_set = dataclasses.replace(
        phantom, cases=[c for c in phantom.cases if c.subject_id != HELD_OUT_PULLBACK], root="phantom"
    )
    test_cases = [c for c in phantom.cases if c.subject_id == HELD_OUT_PULLBACK]
    runs = out_dir / "runs"
    shutil.rmtree(runs, ignore_errors=True)

    def on_epoch(name: str) -> Callable[[dict[str, Any]], None]:
        return lambda r: log(f"{name}: epoch {r['epoch']:2d}/{r['epochs']}  val Dice {r['val_dice']:.3f}")

    log(f"training {DEMO_CONFIG.model} on {len(train_set)} phantom frames, full masks ({DEMO_CONFIG.epochs} epochs)")
    train(train_set, DEMO_CONFIG, runs / "supervised", progress=on_epoch("full masks"))
    model = SegmentationModel.load(runs / "supervised")
    supervised = evaluate_model(model, test_cases)
    for case in test_cases[:: max(1, len(test_cases) // 4)]:
        prediction = model.predict([case.image])[0]
        write_overlay(out_dir / "overlays" / f"{case.case_id}.png", case.image, prediction, case.label)

    log("training the same network from simulated scribbles")
    train_weak(train_set, DEMO_CONFIG, DEMO_WEAK, runs / "scribbles", progress=on_epoch("scribbles"))
    weak = evaluate_model(SegmentationModel.load(runs / "scribbles"), test_cases)

    log(f"active learning with the SQA network: {AL_SETTINGS}")
    loop = run_al(
        train_set,
        test_cases=test_cases,
        out_dir=runs / "active_learning",
        progress=lambda r: log(f"SQA loop: {r['num_labelled']} labelled, Dice {r['metrics']['dice_mean']:.3f}"),
        **AL_SETTINGS,
    )
    rounds = [
        {
            "num_labelled": r["num_labelled"],
            "fraction": r["fraction"],
            "dice": r["metrics"]["dice_mean"],
            "quality": r["metrics"]["quality"],
            "quality_flips": r["metrics"]["quality_flips"],
            "effort": r["effort"],
        }
        for r in loop.rounds
    ]
    summary = {
        "supervised": _without_cases(supervised),
        "weak": {"labels": DEMO_WEAK.labels, "method": DEMO_WEAK.method, **_without_cases(weak)},
        "active_learning": {"settings": AL_SETTINGS, "pool": len(train_set), "rounds": rounds},
        "seconds": time.perf_counter() - started,
    }
    atomic_write_json(out_dir / "metrics.json", summary)
    return {**summary, "supervised": supervised, "weak": weak}
