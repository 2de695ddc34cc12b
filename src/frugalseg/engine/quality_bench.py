"""``frugalseg bench quality``: how well saved SQA networks predict their own Dice, image by image.

For each checkpoint: its Dice on the cases and the calibration (Pearson, Spearman, mean absolute error against
the true per-image Dice) of the estimates made without ground truth, the error branch's (``quality``) and the
same with flip agreement (``quality_flips``, :mod:`frugalseg.quality.flips`); with ``shape="ellipse"``, also
each times the shape agreement (``quality_shape``, ``quality_flips_shape``, :mod:`frugalseg.quality.shape`).
A checkpoint saved by ``frugalseg al`` or ``bench al`` has its settings beside it (a run's ``settings.json``, a
reference's record), which give its model, size and dropout; otherwise the options do.

``on="test"`` scores the held-out split (:func:`~frugalseg.engine.bench.held_out_split`, seed 0, as
``bench al``) or the given test cases. ``on="pool"`` scores the pool images the network did not learn from
(those missing from the ``state.json`` beside it), where a loop chooses what to label next.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from frugalseg.atomic import atomic_write_json
from frugalseg.data.case import Case, Dataset
from frugalseg.engine.al_report import mean_defined
from frugalseg.engine.al_run import labelled_cases, load_sqa_network
from frugalseg.engine.bench import held_out_split
from frugalseg.engine.sqa_train import evaluate_sqa, quality_estimates
from frugalseg.errors import InputError

__all__ = ["bench_quality"]


def _network_settings(checkpoint: Path, defaults: dict[str, Any]) -> dict[str, Any]:
    """``model``, ``size`` and ``dropout`` of the network saved at ``checkpoint``.

    From the record beside a ``bench al`` reference (``NAME.json`` with its ``options``), else from the run's
    ``settings.json`` in the same folder, else ``defaults``.
    """
    record, run = checkpoint.with_suffix(".json"), checkpoint.parent / "settings.json"
    try:
        if record.is_file() and "options" in (saved := json.loads(record.read_text())):
            options = saved["options"]
            return {"model": options["model"], "size": options["size"], "dropout": options["dropout"]}
        if run.is_file():
            saved = json.loads(run.read_text())
            return {"model": saved["train"]["model"], "size": saved["train"]["size"], "dropout": saved["dropout"]}
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise InputError(f"{checkpoint}: its settings beside it are unreadable ({error!r})") from error
    return defaults


def _unlearned(pool: Sequence[Case], checkpoint: Path) -> list[Case]:
    """Pool cases missing from the labelled ids of the run's ``state.json`` beside ``checkpoint``."""
    path = checkpoint.parent / "state.json"
    if not path.is_file():
        raise InputError(f"{checkpoint}: on=pool needs the run's state.json beside it (its labelled images)")
    try:
        labelled = set(json.loads(path.read_text())["labelled"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise InputError(f"{path}: not a loop state ({error!r})") from error
    return [case for case in pool if case.case_id not in labelled]


def bench_quality(
    dataset: Dataset,
    checkpoints: Sequence[str | Path],
    json_path: str | Path,
    *,
    test_cases: Sequence[Case] | None = None,
    on: Literal["test", "pool"] = "test",
    model: str = "sqa_small",
    size: int = 128,
    dropout: float = 0.1,
    shape: str = "none",
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Calibration of each checkpoint's quality estimates; writes and returns the report.

    Returns:
        ``{"on", "shape", "networks": [{"checkpoint", "cases", "dice_mean", "quality": {"pearson", "spearman",
        "mae"}, "quality_flips": {...}, ...}], "summary": {estimate: {"pearson_mean", "pearson_min",
        "spearman_mean", "mae_mean"}}, "seconds"}``.

    Raises:
        InputError: no checkpoint, an unreadable one, fewer than two cases to score, an unknown ``shape``, or
            ``on="pool"`` without a run's ``state.json``.
    """
    if not checkpoints:
        raise InputError("bench quality needs at least one checkpoint")
    if on not in ("test", "pool"):
        raise InputError(f"on={on!r}: expected test or pool")
    try:
        estimates = quality_estimates(shape)
    except ValueError as error:
        raise InputError(str(error)) from error
    started = time.perf_counter()
    if test_cases is None:
        pool, test = held_out_split(dataset, seed=0)
    else:
        pool, test = labelled_cases(dataset.cases), labelled_cases(test_cases)
    in_channels = max(case.channels for case in [*pool, *test])
    networks = []
    for checkpoint in map(Path, checkpoints):
        settings = _network_settings(checkpoint, {"model": model, "size": size, "dropout": dropout})
        cases = test if on == "test" else _unlearned(pool, checkpoint)
        if len(cases) < 2:
            raise InputError(f"{checkpoint}: {len(cases)} case(s) to score; correlations need at least 2")
        network = load_sqa_network(
            checkpoint,
            settings["model"],
            in_channels=in_channels,
            num_classes=dataset.num_classes,
            dropout=settings["dropout"],
        )
        report = evaluate_sqa(network, cases, size=settings["size"], class_names=dataset.class_names, shape=shape)
        networks.append(
            {
                "checkpoint": str(checkpoint),
                "cases": len(cases),
                "dice_mean": report["dice_mean"],
                **{estimate: report[estimate] for estimate in estimates},
            }
        )
        if log is not None:
            log(
                f"{checkpoint}: Dice {report['dice_mean']:.4f}, Pearson "
                + ", ".join(f"{estimate} {report[estimate].get('pearson', float('nan')):.3f}" for estimate in estimates)
            )
    summary = {}
    for estimate in estimates:
        pearson = [r for n in networks if (r := n[estimate].get("pearson")) is not None and np.isfinite(r)]
        summary[estimate] = {
            "pearson_mean": mean_defined(pearson),
            "pearson_min": min(pearson) if pearson else None,
            "spearman_mean": mean_defined([n[estimate].get("spearman") for n in networks]),
            "mae_mean": mean_defined([n[estimate].get("mae") for n in networks]),
        }
    seconds = time.perf_counter() - started
    result = {"on": on, "shape": shape, "networks": networks, "summary": summary, "seconds": seconds}
    atomic_write_json(json_path, result)
    return result
