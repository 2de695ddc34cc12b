"""The SQA network trained once from scratch, as the label-efficiency benchmark's references are.

* the fully supervised reference: the whole pool;
* the passive route the loop is meant to replace: random subsets of the pool, drawn from scratch by the expert
  (:func:`from_scratch_curve`; nested: a seed's smaller subset lies within its larger ones).

Every training is :func:`trained_reference` (cached as JSON, resumed when the options match), the one training
a run's final network also gets (:func:`~frugalseg.engine.al_run.trained_from_scratch`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from frugalseg.active.loop import resolve_count
from frugalseg.atomic import atomic_torch_save, atomic_write_json
from frugalseg.data.case import Case, Dataset
from frugalseg.engine.al_report import spread
from frugalseg.engine.al_run import trained_from_scratch
from frugalseg.engine.config import TrainConfig

__all__ = ["from_scratch_curve", "random_subset", "run_steps", "seed_curve", "trained_reference"]

_SUBSET_STREAM = 0x5AB5E7  # random subsets draw from a stream of their own, apart from the runs'


def trained_reference(
    cases: list[Case], test: list[Case], dataset: Dataset, *, seed: int, path: Path, options: dict[str, Any]
) -> dict[str, Any]:
    """The SQA network trained from scratch on ``cases``, evaluated on ``test`` (cached as JSON at ``path``).

    One one-cycle schedule of ``epochs_per_round`` passes over the cases, and at least ``options["steps"]``
    optimisation steps (:func:`run_steps` for every training but the fully supervised reference). The cache is
    used only when it was written with the same ``options``. The weights are kept beside it, at ``path`` with
    suffix ``.pt`` (``bench quality`` reads them).
    """
    if path.exists():
        cached: dict[str, Any] = json.loads(path.read_text())
        if cached.get("options") == json.loads(json.dumps(options)):
            return cached
    config = TrainConfig(
        model=options["model"],
        size=options["size"],
        epochs=options["epochs_per_round"],
        batch_size=options["batch_size"],
        lr=options["lr"],
        seed=seed,
    )
    network, report = trained_from_scratch(
        cases,
        test,
        config=config,
        steps=options["steps"],
        num_classes=dataset.num_classes,
        dropout=options["dropout"],
        class_names=dataset.class_names,
        device=options["device"],
    )
    result = {"options": options, "seed": seed, **report}
    atomic_torch_save(path.with_suffix(".pt"), network.state_dict())
    atomic_write_json(path, result)
    return result


def run_steps(options: dict[str, Any]) -> int:
    """The steps a whole active-learning run is guaranteed: ``min_steps`` per round, ``rounds + 1`` trainings."""
    return int(options["min_steps"]) * (int(options["rounds"]) + 1)


def random_subset(pool: Sequence[Case], count: int, *, seed: int) -> list[Case]:
    """``count`` cases of ``pool`` drawn at random by ``seed``, in pool order; nested: a smaller count's subset
    lies within a larger one's for the same seed."""
    order = np.random.default_rng([seed, _SUBSET_STREAM]).permutation(len(pool))
    return [pool[i] for i in sorted(order[:count])]


def from_scratch_curve(
    pool: list[Case],
    test: list[Case],
    dataset: Dataset,
    *,
    fractions: Sequence[float],
    seeds: Sequence[int],
    out: Path,
    options: dict[str, Any],
    full: list[dict[str, Any]],
    scratch_seconds: dict[str, float],
    log: Callable[[str], Any],
) -> list[dict[str, Any]]:
    """The passive route: per fraction, random subsets drawn and trained from scratch, one per seed.

    Returns:
        Curve points ``{"fraction", "num_labelled", "dice_mean", "dice_std", "dice_by_seed", "effort_seconds",
        "effort_by_seed"}`` in increasing fraction, ``effort_seconds`` the mean time to draw the subsets from scratch
        (``effort_by_seed`` each seed's); the last point is the whole pool (the fully supervised reference ``full``,
        one result per seed).
    """
    curve = []
    for count in sorted({resolve_count(f, len(pool), name="from_scratch") for f in fractions}):
        dice, seconds = [], []
        for s in seeds:
            log(f"from scratch: {count} random pool cases, seed {s}")
            subset = random_subset(pool, count, seed=s)
            path = out / f"n{count}_seed{s}.json"
            result = trained_reference(subset, test, dataset, seed=s, path=path, options={**options, "count": count})
            dice.append(float(result["dice_mean"]))
            seconds.append(sum(scratch_seconds[c.case_id] for c in subset))
        curve.append(_point(count, len(pool), dice, seconds))
    whole = float(sum(scratch_seconds[c.case_id] for c in pool))
    curve.append(_point(len(pool), len(pool), [float(f["dice_mean"]) for f in full], [whole] * len(full)))
    return curve


def seed_curve(curve: Sequence[dict[str, Any]], index: int) -> list[dict[str, Any]]:
    """The passive route of the ``index``-th seed alone: its subsets' Dice and drawing time at every point."""
    return [
        {"fraction": p["fraction"], "dice_mean": p["dice_by_seed"][index], "effort_seconds": p["effort_by_seed"][index]}
        for p in curve
    ]


def _point(count: int, pool_size: int, dice: list[float], seconds: list[float]) -> dict[str, Any]:
    return {
        "fraction": count / pool_size,
        "num_labelled": count,
        "dice_mean": float(np.mean(dice)),
        "dice_std": spread(dice),
        "dice_by_seed": dice,
        "effort_seconds": float(np.mean(seconds)),
        "effort_by_seed": [float(v) for v in seconds],
    }
