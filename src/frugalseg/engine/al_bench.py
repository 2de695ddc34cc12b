"""``frugalseg bench al``: the label-efficiency benchmark (Dice against the percentage of the pool labelled,
per strategy, over seeds).

:func:`bench_al` runs every strategy with every seed (:func:`~frugalseg.engine.al_run.run_al`, resuming
finished or interrupted runs), trains the fully supervised reference (the whole pool, at least as many
optimisation steps as a whole run, or ``reference_steps``) once per seed, and writes the JSON report and a PNG
plot beside it.

With ``retrain`` each run ends with its acquired labels trained once from scratch, as the reference is. With
``from_scratch`` fractions it also trains the passive route the loop is meant to replace (random subsets drawn
and trained from scratch, :mod:`frugalseg.engine.al_reference`), and sets each strategy's assisted effort
against the time the passive route takes to reach the same Dice
(:func:`~frugalseg.engine.al_report.versus_from_scratch`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from frugalseg.active.correction import CORRECTION_EFFORT, scratch_seconds
from frugalseg.active.loop import ActiveLearningConfig, effort_totals
from frugalseg.atomic import atomic_write_json
from frugalseg.data.case import Case, Dataset
from frugalseg.engine.al_reference import from_scratch_curve, run_steps, seed_curve, trained_reference
from frugalseg.engine.al_report import (
    mean_calibration,
    mean_defined,
    plot_curves,
    spread,
    summarise_final,
    summarise_strategy,
    versus_from_scratch,
    versus_random,
)
from frugalseg.engine.al_run import labelled_cases, run_al
from frugalseg.engine.bench import evenly_spaced, held_out_split
from frugalseg.errors import InputError

__all__ = ["bench_al"]

QUICK_MAX_POOL = 48
QUICK_MAX_TEST = 16


def bench_al(
    pool_dataset: Dataset,
    test_cases: Sequence[Case] | None,
    *,
    strategies: Sequence[str],
    seeds: int | Sequence[int],
    json_path: str | Path,
    quick: bool = False,
    initial: int | float = 0.02,
    batch: int | float = 0.02,
    rounds: int = 5,
    size: int = 128,
    epochs_per_round: int = 10,
    model: str = "sqa_small",
    mc_samples: int = 8,
    min_steps: int = 0,
    batch_size: int = 16,
    lr: float = 3e-3,
    dropout: float = 0.1,
    acquire: Literal["full", "boxes", "scribbles"] = "full",
    assist: bool = False,
    box_fit: bool = False,
    cold_start: Literal["random", "diverse"] = "random",
    from_scratch: Sequence[int | float] = (),
    retrain: bool = False,
    reference_steps: int = 0,
    final_steps: int = 0,
    device: str = "cpu",
    log: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Label-efficiency benchmark: every strategy x seed, the fully supervised reference, JSON and PNG.

    The pool is the labelled cases of ``pool_dataset`` and the test set ``test_cases``, or a held-out split by
    subject of the pool (seed 0) when ``None``. ``quick`` keeps at most 48 pool cases (evenly spread) and 16 test
    cases, ``size <= 64``, ``rounds <= 2`` and ``epochs_per_round <= 2``. ``acquire`` is the expert's label,
    ``assist`` box-assisted correction (:func:`run_al`) and ``cold_start`` how the first batch is chosen; the fully
    supervised reference depends on none of them. ``from_scratch``: sizes (fractions of the pool or counts) of
    the passive route's random subsets (module docstring); the report's ``from_scratch`` curve ends with the
    reference, and ``effort.strategies.<name>.same_final_dice`` (and ``.to_99pct_of_full.from_scratch``) set the
    assisted effort against it; ``same_final_dice_retrained`` does so for the final trainings' Dice, and its
    ``_by_seed`` list for each run against its own seed's subsets. ``retrain`` (implied by ``from_scratch``): each
    run ends with its final training (``run_al``'s ``final_steps``; ``strategies.<name>.retrained``). The final
    trainings and the passive route's subsets train ``final_steps`` steps, by default the steps a whole loop is
    guaranteed (``min_steps`` x (``rounds`` + 1)), so that the two compare under one protocol; the fully supervised
    reference as many and at least ``reference_steps``, since the whole pool needs more steps than a tenth of it to
    be seen as often (the passive curve's last point is then trained longer than its subsets, which favours the
    passive route). Runs go to ``<json stem>-runs/`` and are resumed when run again with the same settings.

    Returns:
        The report written to ``json_path``: ``{"strategies": {name: {"curve": [{"fraction", "dice_mean",
        "dice_std", ...}], "fraction_of_full_at_10pct", ...}}, "quality": {"pearson", "spearman", ...},
        "effort": {...}, "full": {...}, ...}``; the plot is ``json_path`` with suffix ``.png``.
    """
    started = time.perf_counter()
    json_path = Path(json_path)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list or not strategies:
        raise InputError("bench al needs at least one strategy and one seed")
    retrain = retrain or bool(from_scratch)
    if retrain and acquire != "full":
        raise InputError(f"retraining and from_scratch use full labels; acquire={acquire!r} is not full")
    for name in strategies:
        ActiveLearningConfig(strategy=name)  # validates the name
    if test_cases is None:
        pool, test = held_out_split(pool_dataset, seed=0)
    else:
        pool, test = labelled_cases(pool_dataset.cases), labelled_cases(test_cases)
    if quick:
        pool = evenly_spaced(pool, QUICK_MAX_POOL)
        test = test[:QUICK_MAX_TEST]
        size, rounds, epochs_per_round = min(size, 64), min(rounds, 2), min(epochs_per_round, 2)
    pool_set = dataclasses.replace(pool_dataset, cases=pool)
    runs = json_path.with_name(json_path.stem + "-runs")
    options = {
        "model": model,
        "size": size,
        "epochs_per_round": epochs_per_round,
        "batch_size": batch_size,
        "lr": lr,
        "dropout": dropout,
        "min_steps": min_steps,
        "rounds": rounds,
        "device": device,
        "num_pool": len(pool),
    }
    subset_steps = final_steps or run_steps(options)
    full_steps = max(reference_steps, subset_steps)
    run_final_steps = max(subset_steps, 1) if retrain else 0
    subset_options, full_options = {**options, "steps": subset_steps}, {**options, "steps": full_steps}
    log(f"fully supervised reference: {len(pool)} pool cases, {len(test)} test cases, seeds {seed_list}")
    full = [
        trained_reference(pool, test, pool_dataset, seed=s, path=runs / "full" / f"seed{s}.json", options=full_options)
        for s in seed_list
    ]
    full_dice = float(np.mean([f["dice_mean"] for f in full]))
    report_strategies: dict[str, Any] = {}
    drawing = {c.case_id: scratch_seconds(c.label, spacing=c.spacing) for c in pool if c.label is not None}
    pool_scratch = float(sum(drawing.values()))
    effort: dict[str, Any] = {
        "model": CORRECTION_EFFORT.to_dict(),
        "pool_scratch_seconds": pool_scratch,
        "strategies": {},
    }
    runs_by_strategy = {}
    for name in strategies:
        results = []
        for s in seed_list:
            log(f"{name}, seed {s}")
            results.append(
                run_al(
                    pool_set,
                    strategy=name,
                    initial=initial,
                    batch=batch,
                    rounds=rounds,
                    out_dir=runs / name / f"seed{s}",
                    seed=s,
                    size=size,
                    epochs_per_round=epochs_per_round,
                    test_cases=test,
                    model=model,
                    mc_samples=mc_samples,
                    min_steps=min_steps,
                    batch_size=batch_size,
                    lr=lr,
                    dropout=dropout,
                    final_steps=run_final_steps,
                    acquire=acquire,
                    assist=assist,
                    box_fit=box_fit,
                    cold_start=cold_start,
                    device=device,
                    progress=lambda r: log(f"  {r['num_labelled']} labelled: Dice {r['metrics']['dice_mean']:.4f}"),
                )
            )
        report_strategies[name], effort["strategies"][name] = summarise_strategy(
            results, full_dice, pool_scratch_seconds=pool_scratch
        )
        runs_by_strategy[name] = results
    passive = None
    if from_scratch:
        passive = from_scratch_curve(
            pool,
            test,
            pool_dataset,
            fractions=from_scratch,
            seeds=seed_list,
            out=runs / "from_scratch",
            options=subset_options,
            full=full,
            scratch_seconds=drawing,
            log=log,
        )
    for name, entry in effort["strategies"].items() if retrain else ():
        retrained = summarise_final(runs_by_strategy[name], full_dice, pool_size=len(pool))
        report_strategies[name]["retrained"] = retrained
        if passive is None:
            continue
        seconds = entry["assisted_seconds"]
        final = report_strategies[name]["curve"][-1]["dice_mean"]
        entry["same_final_dice"] = versus_from_scratch(final, seconds, passive)
        entry["same_final_dice_retrained"] = versus_from_scratch(retrained["dice_mean"], seconds, passive)
        entry["same_final_dice_retrained_by_seed"] = [
            versus_from_scratch(dice, effort_totals(run.acquisitions)["seconds"], seed_curve(passive, i))
            for i, (run, dice) in enumerate(zip(runs_by_strategy[name], retrained["dice_by_seed"], strict=True))
        ]
        if entry["to_99pct_of_full"] is not None:
            reached = entry["to_99pct_of_full"]
            reached["from_scratch"] = versus_from_scratch(0.99 * full_dice, reached["assisted_seconds"], passive)
    report = {
        "benchmark": "active_learning",
        "dataset": {
            "root": pool_dataset.root,
            "format": pool_dataset.source_format,
            "classes": pool_dataset.class_names,
        },
        "num_pool": len(pool),
        "num_test": len(test),
        "seeds": seed_list,
        "settings": {
            **options,
            "initial": initial,
            "batch": batch,
            "rounds": rounds,
            "mc_samples": mc_samples,
            "acquire": acquire,
            "assist": "box" if assist else None,
            "box_fit": box_fit,
            "cold_start": cold_start,
            "from_scratch": list(from_scratch),
            "retrain": retrain,
            "reference_steps": full_steps,
            "final_steps": run_final_steps or None,
            "quick": quick,
        },
        "full": {"dice_mean": full_dice, "dice_std": spread([f["dice_mean"] for f in full]), "per_seed": full},
        "strategies": report_strategies,
        "from_scratch": passive,
        "versus_random": versus_random(report_strategies, seed_list),
        "quality": {
            **mean_calibration(full),
            "error_map": {k: mean_defined([f["error_map"][k] for f in full]) for k in ("auroc", "ap")},
            "source": "fully supervised SQA network on the test cases (mean over seeds); per strategy: final_quality",
        },
        "effort": effort,
        "plot": str(json_path.with_suffix(".png")),
        "seconds": time.perf_counter() - started,
    }
    plotted = dict(report_strategies)
    if passive:  # the subsets, not the whole pool (the reference's line)
        plotted["random, drawn and trained from scratch"] = {"curve": passive[:-1]}
    plot_curves(
        plotted,
        full_dice,
        json_path.with_suffix(".png"),
        title=pool_dataset.root or pool_dataset.source_format,
    )
    atomic_write_json(json_path, report)
    return report
