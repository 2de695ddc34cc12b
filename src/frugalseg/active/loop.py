"""The active-learning loop: handed callables, it never owns the model.

::

    cold start: k cases chosen at random or evenly spread ("diverse"), labelled from scratch by the expert
    round r = 0 .. rounds:
        model_r = fine_tune(labelled cases, r)              (the callable warm-starts from model_{r-1})
        metrics_r = evaluate(model_r)
        if r < rounds: score(model_r, unlabelled) -> select a batch -> expert corrects predict(model_r, batch)
                       -> add the batch to the labelled set
        save state.json

``state.json`` (written atomically after the cold start and after every round) holds the configuration, the
labelled ids in acquisition order, the effort of every acquisition, the per-round metrics and the random
generator's state. Calling :func:`run_active_learning` again with the same pool and configuration resumes
after the last completed round (the ``fine_tune`` callable is asked for round ``r`` again and must warm-start
from what it saved for round ``r - 1`` if it wants an exact replay). Everything random (cold start, the
``random`` strategy, tie-breaks) is drawn from one generator seeded by ``config.seed``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from frugalseg.active.expert import Acquisition, ModelPrediction, SimulatedExpert
from frugalseg.active.strategies import (
    coreset_selection,
    evenly_spaced_selection,
    random_scores,
    rank_by_score,
    select_top_k_diverse,
    sqa_scores,
)
from frugalseg.atomic import atomic_write_json
from frugalseg.data.case import Case
from frugalseg.errors import InputError

__all__ = [
    "LOOP_STRATEGIES",
    "STATE_FILE",
    "ALResult",
    "ActiveLearningConfig",
    "PoolScores",
    "effort_totals",
    "resolve_count",
    "run_active_learning",
]

STATE_FILE = "state.json"
STATE_VERSION = 1

LOOP_STRATEGIES: dict[str, str | None] = {
    "random": None,
    "evenly_spaced": None,
    "entropy": "entropy",
    "bald": "bald",
    "predictive_entropy": "predictive_entropy",
    "coreset": None,
    "sqa": "quality",
    "sqa_diverse": "quality",
    "sqa_flips": "flip_quality",
    "sqa_shape": "shape_quality",
}
"""Strategy name -> the key of :attr:`PoolScores.scores` it ranks by (``None``: no per-image score needed;
``coreset`` uses :attr:`PoolScores.features`). Higher entropy/BALD first; lower predicted quality first
(``sqa_flips``: the quality estimated with flip agreement, :mod:`frugalseg.quality.flips`; ``sqa_shape``: with
agreement to the fitted ellipse, :mod:`frugalseg.quality.shape`, for objects that are ellipses by definition)."""

_QUALITY_KEYS = frozenset({"quality", "flip_quality", "shape_quality"})
"""The score keys that are predicted Dice values, ranked worst first."""

Count = int | float


@dataclass(frozen=True, kw_only=True)
class ActiveLearningConfig:
    """What decides an active-learning run (saved in ``state.json``; resuming needs the same values).

    Attributes:
        strategy: one of :data:`LOOP_STRATEGIES`.
        initial: cold-start size: a fraction of the pool in ``(0, 1)`` (rounded, at least 1) or a count ``>= 1``.
        batch: cases acquired per round, same convention.
        rounds: acquisition rounds after the cold start (the model is trained ``rounds + 1`` times).
        seed: seeds every random choice of the loop.
        cold_start: ``"random"`` or ``"diverse"`` (evenly spaced over the pool order, e.g. along each pullback).
        min_gap: ``sqa_diverse``: two cases of one subject in one batch are at least this many frames apart.
    """

    strategy: str = "sqa"
    initial: Count = 0.02
    batch: Count = 0.02
    rounds: int = 5
    seed: int = 0
    cold_start: Literal["random", "diverse"] = "random"
    min_gap: int = 2

    def __post_init__(self) -> None:
        if self.strategy not in LOOP_STRATEGIES:
            raise InputError(f"unknown strategy {self.strategy!r}; expected one of {', '.join(LOOP_STRATEGIES)}")
        if self.cold_start not in ("random", "diverse"):
            raise InputError(f"cold_start={self.cold_start!r}: expected 'random' or 'diverse'")
        if self.rounds < 0 or self.min_gap < 1:
            raise InputError(f"rounds={self.rounds}, min_gap={self.min_gap}: expected rounds >= 0 and min_gap >= 1")
        for name in ("initial", "batch"):
            resolve_count(getattr(self, name), 10**9, name=name)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolve_count(value: Count, pool_size: int, *, name: str = "count") -> int:
    """A count from a fraction of the pool (``0 < value < 1``: ``max(1, round(value * pool_size))``) or a count.

    Raises:
        InputError: a bool, a non-integral number ``>= 1``, or a value ``<= 0``.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise InputError(f"{name}={value!r}: expected a fraction in (0, 1) or a whole count >= 1")
    if value < 1:
        return max(1, round(value * pool_size))
    if value != int(value):
        raise InputError(f"{name}={value!r}: expected a fraction in (0, 1) or a whole count >= 1")
    return int(value)


@dataclass(frozen=True)
class PoolScores:
    """What the ``score`` callable returns for the cases it was given, in their order.

    Attributes:
        scores: per-image values by name: ``"entropy"``, ``"bald"``, ``"predictive_entropy"`` (higher first)
            and ``"quality"`` / ``"flip_quality"`` (predicted Dice, lower first); only those the strategy needs
            (:data:`LOOP_STRATEGIES`).
        features: ``(N, D)`` feature vectors (``coreset``; the loop then scores labelled cases too).

    Shape:
        each score ``(N,)``; ``features (N, D)``.
    """

    scores: Mapping[str, np.ndarray] = field(default_factory=dict)
    features: np.ndarray | None = None


@dataclass(frozen=True)
class ALResult:
    """Outcome of :func:`run_active_learning` (the contents of ``state.json``).

    ``final``: set by a caller that trains the acquired labels once more after the last round (e.g. the test
    metrics of :func:`frugalseg.engine.al_run.run_al`'s final training), else ``None``.
    """

    labelled_ids: list[str]
    rounds: list[dict[str, Any]]
    acquisitions: list[dict[str, Any]]
    state_path: Path
    complete: bool
    final: dict[str, Any] | None = None


FineTune = Callable[[list[Case], int], Any]
Score = Callable[[Any, list[Case]], PoolScores]
Evaluate = Callable[[Any], dict[str, Any]]
Predict = Callable[[Any, list[Case]], Sequence[ModelPrediction]]


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return dict(rng.bit_generator.state)


def _new_state(pool: Sequence[Case], config: ActiveLearningConfig) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "config": config.to_dict(),
        "pool_ids": [case.case_id for case in pool],
        "labelled": [],
        "acquisitions": [],
        "rounds": [],
        "completed_rounds": 0,
        "complete": False,
        "rng": None,
    }


def _load_state(path: Path, pool: Sequence[Case], config: ActiveLearningConfig) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: unreadable active-learning state ({error}); delete it to start again") from error
    if state.get("version") != STATE_VERSION or state.get("config") != config.to_dict():
        raise InputError(f"{path}: holds a run with other settings; use another output folder or the same settings")
    if state.get("pool_ids") != [case.case_id for case in pool]:
        raise InputError(f"{path}: holds a run on another pool of cases; use another output folder")
    return state


def _positions(cases: Sequence[Case]) -> list[tuple[Hashable, int]]:
    """``(subject_id, frame)`` per case: ``metadata["frame"]`` when present, else the order within the subject."""
    seen: dict[str, int] = {}
    out: list[tuple[Hashable, int]] = []
    for case in cases:
        order = seen.get(case.subject_id, 0)
        seen[case.subject_id] = order + 1
        frame = case.metadata.get("frame")
        out.append((case.subject_id, int(frame) if isinstance(frame, int | np.integer) else order))
    return out


def _required(scores: PoolScores, key: str, n: int) -> np.ndarray:
    if key not in scores.scores:
        raise ValueError(f"the score callable returned no {key!r} scores (has {sorted(scores.scores)})")
    values = np.asarray(scores.scores[key], dtype=np.float64).ravel()
    if values.size != n:
        raise ValueError(f"{key!r} scores: expected {n} values, got {values.size}")
    return values


def _fill(chosen: np.ndarray, order: np.ndarray, k: int) -> np.ndarray:
    """``chosen`` topped up to ``k`` with the best-ranked items not in it (when a constraint left too few)."""
    taken = set(chosen.tolist())
    extra = [i for i in order.tolist() if i not in taken][: k - chosen.size]
    return np.concatenate([chosen, np.asarray(extra, dtype=np.int64)]).astype(np.int64)


def _select(
    strategy: str,
    k: int,
    unlabelled: list[Case],
    labelled: list[Case],
    model: Any,
    score: Score,
    rng: np.random.Generator,
    min_gap: int,
) -> np.ndarray:
    """Indices into ``unlabelled`` of the next batch, in selection order."""
    n = len(unlabelled)
    if strategy == "random":
        return rank_by_score(random_scores(n, seed=rng), seed=rng)[:k]
    if strategy == "evenly_spaced":
        return evenly_spaced_selection(n, k)
    if strategy == "coreset":
        result = score(model, unlabelled + labelled)
        if result.features is None:
            raise ValueError("the score callable returned no features (needed by the coreset strategy)")
        features = np.asarray(result.features, dtype=np.float64)
        if features.shape[0] != n + len(labelled):
            raise ValueError(f"coreset features: expected {n + len(labelled)} rows, got {features.shape[0]}")
        return coreset_selection(features[:n], features[n:], k, seed=rng)
    key = LOOP_STRATEGIES[strategy]
    if key is None:
        raise ValueError(f"strategy {strategy!r} has no per-image score")
    values = _required(score(model, unlabelled), key, n)
    ranking = sqa_scores(values) if key in _QUALITY_KEYS else values
    order = rank_by_score(ranking, seed=rng)
    if strategy == "sqa_diverse":
        chosen = select_top_k_diverse(ranking, k, positions=_positions(unlabelled), min_gap=min_gap, seed=rng)
        return _fill(chosen, order, k)
    return order[:k]


def _acquire(
    expert: SimulatedExpert, cases: list[Case], predictions: Sequence[ModelPrediction] | None
) -> list[Acquisition]:
    if predictions is not None and len(predictions) != len(cases):
        raise ValueError(f"the predict callable returned {len(predictions)} predictions for {len(cases)} cases")
    return [expert.annotate(case, None if predictions is None else predictions[i]) for i, case in enumerate(cases)]


def _record(acquisition: Acquisition, round_index: int) -> dict[str, Any]:
    return {**acquisition.record(), "round": round_index}


def effort_totals(acquisitions: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Expert seconds charged for ``acquisitions`` (records as in :attr:`ALResult.acquisitions`), the seconds
    drawing them from scratch would take, and their ratio (NaN when nothing was drawn)."""
    seconds = float(sum(a["seconds"] for a in acquisitions))
    scratch = float(sum(a["scratch_seconds"] for a in acquisitions))
    return {"seconds": seconds, "scratch_seconds": scratch, "ratio": seconds / scratch if scratch > 0 else math.nan}


def _result(path: Path) -> ALResult:
    state = json.loads(path.read_text())  # as saved: a resumed run reads the same values as an uninterrupted one
    return ALResult(
        labelled_ids=list(state["labelled"]),
        rounds=list(state["rounds"]),
        acquisitions=list(state["acquisitions"]),
        state_path=path,
        complete=bool(state["complete"]),
    )


def run_active_learning(
    pool_cases: Sequence[Case],
    *,
    config: ActiveLearningConfig,
    fine_tune: FineTune,
    score: Score,
    evaluate: Evaluate,
    expert: SimulatedExpert,
    state_dir: str | Path,
    predict: Predict | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> ALResult:
    """Run (or resume) the loop described in the module docstring.

    Args:
        pool_cases: the pool, with ground truth for the simulated expert (the callables ``score`` and
            ``predict`` receive copies without labels; ``fine_tune`` receives the acquired labels only).
        config: strategy, sizes, rounds, seed, cold start.
        fine_tune: ``(labelled cases, round) -> model handle``.
        score: ``(model handle, cases) -> PoolScores`` (not called by ``random`` and ``evenly_spaced``).
        evaluate: ``(model handle) -> metrics`` (a JSON-ready dict).
        expert: labels the selected cases and charges the effort.
        state_dir: folder of ``state.json``.
        predict: ``(model handle, cases) -> one ModelPrediction per case`` shown to the expert for correction;
            ``None``: the expert draws from scratch.
        progress: called with each round's record.

    Returns:
        The final state as saved in ``state.json`` (``complete`` True). The loop stops early, after training
        on it, when the pool is exhausted.

    Raises:
        InputError: an empty or duplicated pool, a cold start or batch larger than the pool, or a
            ``state.json`` from other settings.
    """
    pool = list(pool_cases)
    ids = [case.case_id for case in pool]
    if not pool:
        raise InputError("active learning needs a non-empty pool of cases")
    if len(set(ids)) != len(ids):
        raise InputError("the pool holds duplicate case ids; active learning needs one id per case")
    initial = resolve_count(config.initial, len(pool), name="initial")
    batch = resolve_count(config.batch, len(pool), name="batch")
    if initial > len(pool):
        raise InputError(f"initial={config.initial!r} asks for {initial} cases, the pool holds {len(pool)}")
    path = Path(state_dir) / STATE_FILE
    by_id = {case.case_id: case for case in pool}
    state = _load_state(path, pool, config)
    rng = np.random.default_rng(config.seed)
    if state is None:
        state = _new_state(pool, config)
        order = (
            evenly_spaced_selection(len(pool), initial)
            if config.cold_start == "diverse"
            else rng.permutation(len(pool))[:initial]
        )
        chosen = [pool[int(i)] for i in order]
        state["labelled"] = [case.case_id for case in chosen]
        state["acquisitions"] = [_record(a, -1) for a in _acquire(expert, chosen, None)]
        state["rng"] = _rng_state(rng)
        atomic_write_json(path, state)
    else:
        rng.bit_generator.state = state["rng"]
    # the labelled cases as the expert labelled them (replayed: the simulated expert is deterministic)
    labelled_cases = [expert.annotate(by_id[i]).labelled_case(by_id[i]) for i in state["labelled"]]
    while not state["complete"]:
        round_index = int(state["completed_rounds"])
        model = fine_tune(list(labelled_cases), round_index)
        metrics = evaluate(model)
        record: dict[str, Any] = {
            "round": round_index,
            "num_labelled": len(labelled_cases),
            "fraction": len(labelled_cases) / len(pool),
            "metrics": metrics,
            "effort": effort_totals(state["acquisitions"]),
            "selected": [],
        }
        taken = set(state["labelled"])
        unlabelled = [dataclasses.replace(case, label=None) for case in pool if case.case_id not in taken]
        last = round_index >= config.rounds or not unlabelled
        if not last:
            k = min(batch, len(unlabelled))
            stripped = [dataclasses.replace(case, label=None) for case in labelled_cases]
            picks = _select(config.strategy, k, unlabelled, stripped, model, score, rng, config.min_gap)
            if len(set(picks.tolist())) != picks.size or picks.size != k:
                raise ValueError(f"strategy {config.strategy!r} selected {picks.tolist()} for a batch of {k}")
            selected = [unlabelled[int(i)] for i in picks]
            predictions = None if predict is None else predict(model, selected)
            acquisitions = _acquire(expert, [by_id[c.case_id] for c in selected], predictions)
            record["selected"] = [c.case_id for c in selected]
            state["labelled"] += record["selected"]
            state["acquisitions"] += [_record(a, round_index) for a in acquisitions]
            labelled_cases += [a.labelled_case(by_id[a.case_id]) for a in acquisitions]
        state["rounds"].append(record)
        state["completed_rounds"] = round_index + 1
        state["complete"] = last
        state["rng"] = _rng_state(rng)
        atomic_write_json(path, state)
        if progress is not None:
            progress(record)
    return _result(path)
