"""Summaries of active-learning runs over seeds, and the label-efficiency plot (Dice against % labelled)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from frugalseg.active.loop import ALResult, effort_totals
from frugalseg.atomic import atomic_write_bytes

__all__ = [
    "mean_calibration",
    "mean_defined",
    "plot_curves",
    "spread",
    "summarise_final",
    "summarise_strategy",
    "versus_from_scratch",
    "versus_random",
]


def mean_defined(values: Sequence[float | None]) -> float | None:
    """Mean of the values that are defined (not ``None``, finite); ``None`` when none is.

    Correlations are undefined (NaN, saved as ``null``) when a model predicts a constant quality.
    """
    kept = [float(v) for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(kept)) if kept else None


def mean_calibration(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean over :func:`~frugalseg.engine.sqa_train.evaluate_sqa` reports of their quality calibration.

    Returns:
        ``{"pearson", "spearman", "mae", "flips": {...}}``: the error branch's estimate (``quality``) and, under
        ``flips``, the estimate with flip agreement (``quality_flips``; ``None`` values for reports without it).
    """
    keys = ("pearson", "spearman", "mae")

    def mean_of(estimate: str) -> dict[str, float | None]:
        return {key: mean_defined([report.get(estimate, {}).get(key) for report in reports]) for key in keys}

    return {**mean_of("quality"), "flips": mean_of("quality_flips")}


def _at_fraction(curve: list[dict[str, Any]], fraction: float) -> float | None:
    """The mean Dice at ``fraction`` labelled, linear between rounds; ``None`` outside the curve."""
    xs = np.array([point["fraction"] for point in curve])
    ys = np.array([point["dice_mean"] for point in curve], dtype=np.float64)
    if xs.size == 0 or fraction < xs.min() - 1e-9 or fraction > xs.max() + 1e-9:
        return None
    return float(np.interp(fraction, xs, ys))


def _first_reaching(curve: list[dict[str, Any]], dice: float) -> tuple[float, float] | None:
    """``(fraction labelled, cumulative effort seconds)`` where the mean curve first reaches ``dice``.

    Linear between rounds; ``None`` when the curve never reaches it.
    """
    previous = None
    for point in curve:
        if point["dice_mean"] >= dice:
            if previous is None:
                return point["fraction"], point["effort_seconds"]
            t = (dice - previous["dice_mean"]) / (point["dice_mean"] - previous["dice_mean"])
            fraction = previous["fraction"] + t * (point["fraction"] - previous["fraction"])
            seconds = previous["effort_seconds"] + t * (point["effort_seconds"] - previous["effort_seconds"])
            return float(fraction), float(seconds)
        previous = point
    return None


def spread(values: Sequence[float]) -> float:
    """Sample standard deviation (``ddof=1``) of the values over seeds; 0 for a single seed."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def summarise_strategy(
    results: list[ALResult], full_dice: float, *, pool_scratch_seconds: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Curve and effort summary of one strategy over its seeds (rounds aligned by index).

    Curve points: mean fraction labelled, mean and spread (:func:`spread`) of the test Dice over seeds, mean
    cumulative effort. ``fraction_of_full_at_10pct``: the mean Dice at 10 % labelled (linear between rounds;
    ``None`` when the curve does not span 10 %) over ``full_dice``. Effort: mean over seeds of the seconds
    charged for all acquisitions and of drawing the same images from scratch, with and without the cold
    start (drawn from scratch unless box-assisted); ``box_route_share``, the share of corrected images that
    went through the box route (``None`` when none was corrected); and ``to_99pct_of_full``, the fraction
    labelled and the cumulative seconds at which the mean curve first reaches 99 % of ``full_dice`` (linear
    between rounds; ``None`` if it never does), also as a fraction of ``pool_scratch_seconds`` (drawing the
    whole pool from scratch: the fully supervised route).

    Returns:
        ``(strategy summary, effort summary)``.
    """
    num_rounds = min(len(r.rounds) for r in results)
    curve = []
    for i in range(num_rounds):
        dice = [r.rounds[i]["metrics"]["dice_mean"] for r in results]
        curve.append(
            {
                "fraction": float(np.mean([r.rounds[i]["fraction"] for r in results])),
                "num_labelled": int(results[0].rounds[i]["num_labelled"]),
                "dice_mean": float(np.mean(dice)),
                "dice_std": spread(dice),
                "dice_by_seed": [float(d) for d in dice],
                "effort_seconds": float(np.mean([r.rounds[i]["effort"]["seconds"] for r in results])),
                "scratch_seconds": float(np.mean([r.rounds[i]["effort"]["scratch_seconds"] for r in results])),
            }
        )
    at = {f"{p}pct": _at_fraction(curve, p / 100) for p in (5, 10)}
    by_seed = [
        _at_fraction([{"fraction": q["fraction"], "dice_mean": q["metrics"]["dice_mean"]} for q in r.rounds], 0.05)
        for r in results
    ]
    summary = {
        "curve": curve,
        "fraction_of_full_at_10pct": None if at["10pct"] is None or full_dice <= 0 else at["10pct"] / full_dice,
        "dice_at_5pct": at["5pct"],
        "dice_at_5pct_by_seed": by_seed,
        "dice_at_5pct_spread": None if None in by_seed else spread([d for d in by_seed if d is not None]),
        "dice_at_10pct": at["10pct"],
        "final_quality": mean_calibration([r.rounds[num_rounds - 1]["metrics"] for r in results]),
    }
    effort: dict[str, Any] = {}
    for label, keep in (("", lambda a: True), ("_after_cold_start", lambda a: a["round"] >= 0)):
        totals = [effort_totals([a for a in r.acquisitions if keep(a)]) for r in results]
        seconds = float(np.mean([t["seconds"] for t in totals]))
        scratch = float(np.mean([t["scratch_seconds"] for t in totals]))
        effort[f"assisted_seconds{label}"] = seconds
        effort[f"scratch_seconds{label}"] = scratch
        effort[f"ratio{label}"] = seconds / scratch if scratch > 0 else None
    routes = [a["cost"]["route"] for r in results for a in r.acquisitions if a.get("cost") and "route" in a["cost"]]
    effort["box_route_share"] = routes.count("box") / len(routes) if routes else None
    reached = _first_reaching(curve, 0.99 * full_dice)
    effort["to_99pct_of_full"] = None
    if reached is not None and pool_scratch_seconds > 0:
        effort["to_99pct_of_full"] = {
            "fraction": reached[0],
            "assisted_seconds": reached[1],
            "of_pool_scratch_seconds": reached[1] / pool_scratch_seconds,
        }
    return summary, effort


def summarise_final(results: Sequence[ALResult], full_dice: float, *, pool_size: int) -> dict[str, Any]:
    """Each run's final training (its acquired labels trained from scratch, ``ALResult.final``) over the seeds.

    Returns:
        ``{"fraction", "dice_mean", "dice_std", "dice_by_seed", "fraction_of_full", "quality"}``, ``quality`` the
        mean over seeds of the final networks' calibration (:func:`mean_calibration`).
    """
    finals = [r.final for r in results if r.final is not None]
    if len(finals) < len(results):
        raise ValueError("summarise_final: a run has no final training (run_al with final_steps > 0)")
    dice = [float(final["dice_mean"]) for final in finals]
    mean = float(np.mean(dice))
    return {
        "fraction": float(np.mean([len(r.labelled_ids) / pool_size for r in results])),
        "dice_mean": mean,
        "dice_std": spread(dice),
        "dice_by_seed": dice,
        "fraction_of_full": mean / full_dice if full_dice > 0 else None,
        "quality": mean_calibration(finals),
    }


def versus_from_scratch(
    dice: float, assisted_seconds: float, from_scratch: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Assisted effort against the passive route (random images drawn from scratch) to the same Dice.

    ``from_scratch`` is that route's curve in increasing fraction (``dice_mean``, ``effort_seconds``, its last
    point the whole pool). Its time to reach ``dice`` is bracketed by its measured points, with no assumption on
    the curve's shape between them: more than the cost of the largest point below ``dice`` and at most that of
    the first point at or above it. The ratio of ``assisted_seconds`` to that time is bracketed likewise:
    ``ratio_at_most`` (``None`` when even the first point reaches ``dice``) and ``ratio_at_least`` (``None``
    when no point does).
    """
    below = [p for p in from_scratch if p["dice_mean"] < dice]
    above = [p for p in from_scratch if p["dice_mean"] >= dice]
    lower = max(below, key=lambda p: p["fraction"]) if below else None
    upper = min(above, key=lambda p: p["fraction"]) if above else None
    return {
        "dice": dice,
        "assisted_seconds": assisted_seconds,
        "from_scratch_fraction_between": [
            None if lower is None else lower["fraction"],
            None if upper is None else upper["fraction"],
        ],
        "ratio_at_most": None if lower is None else assisted_seconds / lower["effort_seconds"],
        "ratio_at_least": None if upper is None else assisted_seconds / upper["effort_seconds"],
    }


def versus_random(strategies: Mapping[str, Mapping[str, Any]], seeds: Sequence[int]) -> dict[str, Any]:
    """Each strategy's lead over ``random`` at 5 % labelled, seed by seed (the seed fixes the shared cold start).

    Per strategy: the per-seed differences, their mean and spread, the larger of the two curves' seed-to-seed
    spreads at 5 %, and whether the mean lead exceeds it (the unpaired reading) and exceeds the spread of the
    differences (the paired reading). Empty without a ``random`` entry or a curve spanning 5 %.
    """
    baseline = strategies.get("random", {}).get("dice_at_5pct_by_seed")
    if not baseline or None in baseline:
        return {}
    report: dict[str, Any] = {}
    for name, summary in strategies.items():
        values = summary.get("dice_at_5pct_by_seed")
        if name == "random" or not values or None in values:
            continue
        differences = [float(v - b) for v, b in zip(values, baseline, strict=True)]
        lead, paired_spread = float(np.mean(differences)), spread(differences)
        curve_spread = max(float(summary["dice_at_5pct_spread"]), float(strategies["random"]["dice_at_5pct_spread"]))
        report[name] = {
            "seeds": list(seeds),
            "difference_at_5pct_by_seed": differences,
            "difference_mean": lead,
            "difference_spread": paired_spread,
            "curve_spread": curve_spread,
            "beats_random_by_more_than_curve_spread": lead > curve_spread,
            "beats_random_by_more_than_difference_spread": lead > paired_spread,
        }
    return report


def plot_curves(
    strategies: Mapping[str, Mapping[str, Any]], full_dice: float, path: str | Path, *, title: str = ""
) -> Path:
    """Write a PNG of each strategy's mean Dice (band: +- the spread over seeds) against % labelled.

    The fully supervised Dice is drawn as a horizontal line, and 99 % of it dashed. Uses matplotlib's Agg
    canvas directly (no global backend change).

    Args:
        strategies: ``{name: {"curve": [{"fraction", "dice_mean", "dice_std"}, ...]}}`` as in the report.
        full_dice: the fully supervised reference's mean Dice.
        path: the PNG to write (atomically).
        title: the plot's title (e.g. the dataset).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.4), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, summary in strategies.items():
        curve = summary["curve"]
        x = [100 * point["fraction"] for point in curve]
        mean = [point["dice_mean"] for point in curve]
        std = [point["dice_std"] for point in curve]
        (line,) = axes.plot(x, mean, marker="o", markersize=3, label=name)
        low = [m - s for m, s in zip(mean, std, strict=True)]
        high = [m + s for m, s in zip(mean, std, strict=True)]
        axes.fill_between(x, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
    axes.axhline(full_dice, color="black", linewidth=1, label="fully supervised")
    axes.axhline(0.99 * full_dice, color="black", linewidth=1, linestyle="--", label="99% of fully supervised")
    axes.set_xlabel("% of the pool labelled")
    axes.set_ylabel("mean foreground Dice (test)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())
