"""Simulated expert and its effort model; the active-learning loop with toy callables (selection, resume, seeds)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from frugalseg.active.correction import CORRECTION_EFFORT, CorrectionEffort, correction_cost, scratch_seconds
from frugalseg.active.expert import ModelPrediction, SimulatedExpert
from frugalseg.active.loop import (
    ActiveLearningConfig,
    PoolScores,
    resolve_count,
    run_active_learning,
)
from frugalseg.annotations import EFFORT_MODEL, Boxes, Scribbles, boundary_length, full_mask_seconds
from frugalseg.data.case import IGNORE, Case
from frugalseg.errors import InputError

PX_SECONDS = EFFORT_MODEL.vertex_seconds / EFFORT_MODEL.boundary_px_per_vertex  # seconds per pixel of outline
REVIEW = CORRECTION_EFFORT.review_seconds


def _square(shape: tuple[int, int], rows: slice, cols: slice, value: int = 1) -> np.ndarray:
    label = np.zeros(shape, dtype=np.uint8)
    label[rows, cols] = value
    return label


def _disc(size: int = 64, radius: float = 14.0) -> np.ndarray:
    rows, cols = np.mgrid[:size, :size]
    return (np.hypot(rows - size / 2, cols - size / 2) < radius).astype(np.uint8)


# ----------------------------------------------------------------------------------------------- expert effort


def test_perfect_prediction_costs_review_only() -> None:
    truth = _disc()
    cost = correction_cost(truth, truth)
    assert cost.seconds == REVIEW and cost.regions == 0 and not cost.redrawn_from_scratch
    assert cost.scratch_seconds == pytest.approx(full_mask_seconds(truth))


@pytest.mark.parametrize("classes", [1, 2])
def test_empty_prediction_costs_review_plus_scratch(classes: int) -> None:
    truth = _disc()
    if classes == 2:  # a ring of class 2 around a disc of class 1, and a separate square of class 1
        truth = np.where(_disc(radius=20) & ~truth.astype(bool), 2, truth).astype(np.uint8)
        truth[2:8, 2:8] = 1
    cost = correction_cost(np.zeros_like(truth), truth)
    scratch = full_mask_seconds(truth)
    assert cost.seconds == pytest.approx(REVIEW + scratch)
    # the regions to fix are the objects and the redrawn outline is their whole boundary
    assert cost.find_seconds + cost.redraw_seconds == pytest.approx(scratch)
    length = sum(boundary_length(truth == c) for c in range(1, classes + 1))
    assert cost.redraw_seconds == pytest.approx(length * PX_SECONDS)
    assert cost.regions == (1 if classes == 1 else 3)


def test_missing_blob_costs_its_outline_and_finding_it() -> None:
    truth = _disc()
    truth[2:7, 2:7] = 1  # a 5 x 5 object the model missed
    prediction = _disc()
    cost = correction_cost(prediction, truth)
    square_outline = 20 * math.pi / 4  # 20 pixel edges, times pi/4 as boundary_length measures
    assert cost.regions == 1 and cost.flagged_regions == 0
    assert cost.redraw_seconds == pytest.approx(square_outline * PX_SECONDS)
    expected = REVIEW + CORRECTION_EFFORT.unflagged_find_seconds + square_outline * PX_SECONDS
    assert cost.seconds == pytest.approx(expected)
    assert cost.seconds < REVIEW + cost.scratch_seconds


def test_error_map_makes_flagged_regions_cheaper_and_charges_false_alarms() -> None:
    truth = _disc()
    truth[2:7, 2:7] = 1
    prediction = _disc()
    unguided = correction_cost(prediction, truth)
    error = np.zeros(truth.shape)
    error[2:7, 2:7] = 0.9  # the error map flags the missed blob
    guided = correction_cost(prediction, truth, error_prob=error)
    saving = CORRECTION_EFFORT.unflagged_find_seconds - CORRECTION_EFFORT.flagged_find_seconds
    assert guided.flagged_regions == 1
    assert guided.seconds == pytest.approx(unguided.seconds - saving)
    error[50:55, 2:6] = 0.8  # flags a correct area: a false alarm to check
    alarmed = correction_cost(prediction, truth, error_prob=error)
    assert alarmed.false_alarms == 1
    assert alarmed.seconds == pytest.approx(guided.seconds + CORRECTION_EFFORT.false_alarm_seconds)
    error[2:7, 2:7] = 0.2  # below the threshold: the blob is no longer flagged
    assert correction_cost(prediction, truth, error_prob=error).flagged_regions == 0


def test_one_pixel_shift_is_tolerated_but_three_are_not() -> None:
    truth = _square((48, 48), slice(10, 30), slice(10, 30))
    one = _square((48, 48), slice(11, 31), slice(10, 30))
    three = _square((48, 48), slice(13, 33), slice(10, 30))
    assert correction_cost(one, truth).seconds == REVIEW
    cost = correction_cost(three, truth)
    assert cost.regions == 2  # a missed band at the top, an extra band at the bottom
    # redrawn: the outline stretches more than 1 px from the predicted outline. The top side (20 edges, 3 px
    # away), the top 2 edges of each side (3 and 2 px away) and the bottom side but its two end edges, which
    # lie 1 px from the predicted left and right sides.
    assert cost.redraw_seconds == pytest.approx((20 + 4 + 18) * math.pi / 4 * PX_SECONDS)
    strict = dataclasses.replace(CORRECTION_EFFORT, tolerance_px=0.0)
    assert correction_cost(one, truth, effort=strict).regions == 2


def test_tolerance_grows_with_the_object() -> None:
    # a disc of diameter 200 px: 2.5% of it is 5 px, so an outline 3 px inside is accepted, 7 px inside is not
    truth = _disc(size=240, radius=100)
    assert correction_cost(_disc(size=240, radius=97), truth).seconds == REVIEW
    assert correction_cost(_disc(size=240, radius=93), truth).regions == 1
    pixel_floor_only = dataclasses.replace(CORRECTION_EFFORT, tolerance_fraction=0.0)
    assert correction_cost(_disc(size=240, radius=97), truth, effort=pixel_floor_only).regions == 1
    with pytest.raises(ValueError, match="tolerance_fraction"):
        CorrectionEffort(tolerance_fraction=0.6)


def test_only_the_wrong_stretch_of_outline_is_redrawn() -> None:
    truth = _disc(radius=14)
    prediction = _disc(radius=13)  # 1 px inside the truth all round: tolerated
    prediction[29:36, 40:47] = 0  # a notch about 5 px deep on the right
    cost = correction_cost(prediction, truth)
    outline_seconds = boundary_length(truth) * PX_SECONDS
    # the under-segmented ring and the notch form one region to fix, but only the outline beside the notch
    # (about 7 of 88 px) is redrawn
    assert cost.regions == 1
    assert 0 < cost.redraw_seconds < 0.15 * outline_seconds


def test_hopeless_prediction_is_redrawn_from_scratch() -> None:
    truth = _disc(radius=8)
    islands = np.zeros_like(truth)
    islands[44::3, ::3] = 1  # 7 x 22 isolated false-positive pixels, far from the object
    cost = correction_cost(islands, truth)
    assert cost.regions == 7 * 22 + 1  # the islands and the missed object
    assert cost.redrawn_from_scratch
    assert cost.seconds == pytest.approx(REVIEW + cost.scratch_seconds)
    # one false island costs a click to find and delete it: no outline to redraw
    one = np.zeros_like(truth)
    one[60, 60] = 1
    assert correction_cost(truth | one, truth).seconds == pytest.approx(
        REVIEW + CORRECTION_EFFORT.unflagged_find_seconds
    )


def test_ignored_pixels_are_never_errors_and_spacing_scale_is_neutral() -> None:
    truth = _disc()
    truth[:10, :10] = IGNORE
    prediction = _disc()
    prediction[:10, :10] = 1
    assert correction_cost(prediction, truth).seconds == REVIEW
    truth = _disc()
    prediction = _disc(radius=9)
    plain = correction_cost(prediction, truth)
    scaled = correction_cost(prediction, truth, spacing=(0.3, 0.3))
    assert scaled.seconds == pytest.approx(plain.seconds)
    assert scaled.scratch_seconds == pytest.approx(scratch_seconds(truth, spacing=(0.3, 0.3)))


def test_effort_model_rejects_bad_constants_and_shapes() -> None:
    with pytest.raises(ValueError, match="review_seconds"):
        CorrectionEffort(review_seconds=-1.0)
    with pytest.raises(ValueError, match="flag_fraction"):
        CorrectionEffort(flag_fraction=0.0)
    with pytest.raises(ValueError, match="shape"):
        correction_cost(np.zeros((4, 4)), np.zeros((4, 5)))


def _case(index: int, *, size: int = 24, subject: str = "s0") -> Case:
    label = np.zeros((size, size), dtype=np.uint8)
    offset = index % 5
    label[4 + offset : 14 + offset, 5:17] = 1
    return Case(
        case_id=f"c{index:03d}",
        subject_id=subject,
        image=label.astype(np.float32) * 100,
        label=label,
        metadata={"frame": index},
    )


def test_expert_full_label_weak_labels_and_determinism() -> None:
    case = _case(0)
    expert = SimulatedExpert()
    drawn = expert.annotate(case)
    assert drawn.cost is None and drawn.seconds == pytest.approx(full_mask_seconds(case.label))
    assert np.array_equal(drawn.label, case.label)
    corrected = expert.annotate(case, ModelPrediction(label=case.label.copy()))
    assert corrected.seconds == REVIEW and corrected.scratch_seconds == drawn.seconds
    boxes = SimulatedExpert(acquire="boxes").annotate(case)
    assert isinstance(boxes.annotation, Boxes) and len(boxes.annotation) == 1
    assert boxes.seconds == EFFORT_MODEL.box_seconds
    box_case = boxes.labelled_case(case)
    assert box_case.label is None and box_case.boxes[0].as_tuple() == (5, 4, 17, 14)
    scribbles = SimulatedExpert(acquire="scribbles", seed=3).annotate(case)
    assert isinstance(scribbles.annotation, Scribbles) and scribbles.label is not None
    assert set(np.unique(scribbles.label)) <= {0, 1, IGNORE} and (scribbles.label == IGNORE).any()
    assert scribbles.seconds == 2 * EFFORT_MODEL.scribble_seconds  # background and class 1
    again = SimulatedExpert(acquire="scribbles", seed=3).annotate(case)
    assert np.array_equal(again.label, scribbles.label)
    with pytest.raises(ValueError, match="ground-truth"):
        expert.annotate(dataclasses.replace(case, label=None))
    with pytest.raises(ValueError, match="applied to case"):
        drawn.labelled_case(_case(1))


def test_box_assisted_correction_takes_the_quicker_route() -> None:
    case = Case(case_id="d", subject_id="d", image=_disc().astype(np.float32), label=_disc())
    truth = case.label
    seen: list[tuple[int, int, int, int]] = []

    def exact(case: Case, boxes: Boxes) -> np.ndarray:
        seen.extend(box.as_tuple() for box in boxes.boxes)
        return truth.copy()

    def useless(case: Case, boxes: Boxes) -> np.ndarray:
        return np.zeros_like(truth)

    box = EFFORT_MODEL.box_seconds
    bad = ModelPrediction(label=np.zeros_like(truth))
    good = ModelPrediction(label=truth.copy())
    via_box = SimulatedExpert(assistant=exact).annotate(case, bad)
    assert via_box.cost is not None and via_box.cost.route == "box"
    assert via_box.seconds == pytest.approx(REVIEW + box + REVIEW)  # the prediction, the boxes, the outline
    assert via_box.cost.prompt_seconds == box and np.array_equal(via_box.label, truth)
    rows, cols = np.nonzero(truth)
    assert seen == [(cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)]  # the tight box of the disc
    kept = SimulatedExpert(assistant=useless).annotate(case, good)
    assert kept.cost is not None and kept.cost.route == "prediction" and kept.seconds == REVIEW
    cold = SimulatedExpert(assistant=exact).annotate(case)  # no prediction yet: box route or scratch
    assert cold.cost is not None and cold.seconds == pytest.approx(REVIEW + box)
    drawn = SimulatedExpert(assistant=useless).annotate(case)
    assert drawn.cost is None and drawn.seconds == pytest.approx(full_mask_seconds(truth))
    empty = dataclasses.replace(case, label=np.zeros_like(truth))
    assert SimulatedExpert(assistant=exact).annotate(empty, good).cost.route == "prediction"  # nothing to box


# ----------------------------------------------------------------------------------------------- the loop


class Toy:
    """Callables of a fake learner: the model handle is the tuple of labelled ids and the round."""

    def __init__(self, pool: list[Case], *, fail_at_round: int | None = None) -> None:
        self.n = len(pool)
        self.fail_at_round = fail_at_round
        self.fine_tune_rounds: list[int] = []
        self.score_calls: list[list[str]] = []
        # predicted quality: low for cases whose index is 3 mod 7 (the "hard" ones), features on a line
        self.quality = {c.case_id: 0.2 + 0.01 * i if i % 7 == 3 else 0.9 - 0.001 * i for i, c in enumerate(pool)}
        self.feature = {c.case_id: float(i) for i, c in enumerate(pool)}
        self.flip_quality = {c.case_id: 0.5 + 0.01 * i for i, c in enumerate(pool)}  # another order: first worst
        self.shape_quality = {c.case_id: 0.5 - 0.01 * i for i, c in enumerate(pool)}  # and another: last worst

    def fine_tune(self, labelled: list[Case], round_index: int) -> tuple[Any, ...]:
        if round_index == self.fail_at_round:
            self.fail_at_round = None
            raise RuntimeError("interrupted")
        assert all(c.label is not None for c in labelled)
        self.fine_tune_rounds.append(round_index)
        return (tuple(c.case_id for c in labelled), round_index)

    def score(self, model: tuple[Any, ...], cases: list[Case]) -> PoolScores:
        assert all(c.label is None for c in cases), "the scorer must never see the truth"
        self.score_calls.append([c.case_id for c in cases])
        q = np.array([self.quality[c.case_id] for c in cases])
        return PoolScores(
            scores={
                "quality": q,
                "entropy": 1.0 - q,
                "flip_quality": np.array([self.flip_quality[c.case_id] for c in cases]),
                "shape_quality": np.array([self.shape_quality[c.case_id] for c in cases]),
            },
            features=np.array([[self.feature[c.case_id], 0.0] for c in cases]),
        )

    def evaluate(self, model: tuple[Any, ...]) -> dict[str, Any]:
        return {"dice_mean": len(model[0]) / self.n, "round": model[1]}


def _run(pool: list[Case], toy: Toy, state_dir: Path, **config: Any) -> Any:
    return run_active_learning(
        pool,
        config=ActiveLearningConfig(**config),
        fine_tune=toy.fine_tune,
        score=toy.score,
        evaluate=toy.evaluate,
        expert=SimulatedExpert(),
        state_dir=state_dir,
        predict=lambda model, cases: [ModelPrediction(label=np.zeros((24, 24), dtype=np.uint8)) for _ in cases],
    )


@pytest.fixture
def pool() -> list[Case]:
    return [_case(i) for i in range(30)]


@pytest.mark.parametrize(
    "strategy", ["random", "evenly_spaced", "entropy", "sqa", "sqa_diverse", "sqa_flips", "sqa_shape", "coreset"]
)
def test_selection_counts_and_no_case_twice(pool: list[Case], tmp_path: Path, strategy: str) -> None:
    toy = Toy(pool)
    result = _run(pool, toy, tmp_path, strategy=strategy, initial=4, batch=3, rounds=3, seed=1)
    assert [r["num_labelled"] for r in result.rounds] == [4, 7, 10, 13]
    assert [len(r["selected"]) for r in result.rounds] == [3, 3, 3, 0]
    assert len(result.labelled_ids) == len(set(result.labelled_ids)) == 13
    assert toy.fine_tune_rounds == [0, 1, 2, 3]
    assert [r["metrics"]["dice_mean"] for r in result.rounds] == pytest.approx([4 / 30, 7 / 30, 10 / 30, 13 / 30])
    assert result.complete and json.loads(result.state_path.read_text())["completed_rounds"] == 4
    if strategy in ("random", "evenly_spaced"):
        assert toy.score_calls == []  # these strategies need no model output


def test_sqa_picks_worst_predicted_quality_and_entropy_the_most_uncertain(pool: list[Case], tmp_path: Path) -> None:
    for strategy in ("sqa", "entropy"):
        toy = Toy(pool)
        result = _run(pool, toy, tmp_path / strategy, strategy=strategy, initial=2, batch=3, rounds=1, seed=0)
        unlabelled = [c.case_id for c in pool if c.case_id not in result.labelled_ids[:2]]
        worst = sorted(unlabelled, key=lambda i: toy.quality[i])[:3]
        assert result.rounds[0]["selected"] == worst
    for strategy in ("sqa_flips", "sqa_shape"):
        toy = Toy(pool)
        result = _run(pool, toy, tmp_path / strategy, strategy=strategy, initial=2, batch=3, rounds=1, seed=0)
        unlabelled = [c.case_id for c in pool if c.case_id not in result.labelled_ids[:2]]
        estimate = toy.flip_quality if strategy == "sqa_flips" else toy.shape_quality
        assert result.rounds[0]["selected"] == sorted(unlabelled, key=lambda i: estimate[i])[:3]


def test_sqa_diverse_skips_neighbouring_frames(tmp_path: Path) -> None:
    pool = [_case(i) for i in range(12)]  # frames 0..11 of one subject
    toy = Toy(pool)  # default quality 0.9 - 0.001 i: among the rest, the last frames are worst
    toy.quality |= {"c004": 0.1, "c005": 0.15, "c009": 0.2, "c010": 0.25}
    config = {"initial": 1, "batch": 3, "rounds": 1, "seed": 0, "cold_start": "diverse"}
    plain = _run(pool, toy, tmp_path / "plain", strategy="sqa", **config)
    diverse = _run(pool, toy, tmp_path / "diverse", strategy="sqa_diverse", **config)
    assert plain.labelled_ids[0] == diverse.labelled_ids[0] == "c006"  # evenly spaced cold start of one
    assert plain.rounds[0]["selected"] == ["c004", "c005", "c009"]
    # frames 5 and 10 neighbour frames 4 and 9, already in the batch; frame 11 is two frames from 9
    assert diverse.rounds[0]["selected"] == ["c004", "c009", "c011"]


def test_coreset_scores_labelled_cases_too_and_picks_far_ones(pool: list[Case], tmp_path: Path) -> None:
    toy = Toy(pool)
    result = _run(pool, toy, tmp_path, strategy="coreset", initial=1, batch=2, rounds=1, seed=0, cold_start="diverse")
    first = result.labelled_ids[0]  # evenly spaced cold start of one: the middle of the pool
    assert first == "c015"
    assert len(toy.score_calls[0]) == 30  # 29 unlabelled + 1 labelled
    assert sorted(result.rounds[0]["selected"]) == ["c000", "c029"]  # the two ends of the line


def test_effort_is_recorded_per_acquisition(pool: list[Case], tmp_path: Path) -> None:
    result = _run(pool, Toy(pool), tmp_path, strategy="sqa", initial=2, batch=2, rounds=1, seed=0)
    cold = [a for a in result.acquisitions if a["round"] == -1]
    corrected = [a for a in result.acquisitions if a["round"] == 0]
    assert len(cold) == 2 and all(a["cost"] is None and a["seconds"] == a["scratch_seconds"] for a in cold)
    # the predictions shown are empty, so each correction costs review + scratch
    assert all(a["seconds"] == pytest.approx(REVIEW + a["scratch_seconds"]) for a in corrected)
    final = result.rounds[-1]["effort"]
    assert final["seconds"] == pytest.approx(sum(a["seconds"] for a in result.acquisitions))
    assert result.rounds[0]["effort"]["seconds"] == pytest.approx(sum(a["seconds"] for a in cold))


def test_resume_after_interruption_matches_an_uninterrupted_run(pool: list[Case], tmp_path: Path) -> None:
    config = {"strategy": "random", "initial": 3, "batch": 4, "rounds": 4, "seed": 7}
    reference = _run(pool, Toy(pool), tmp_path / "reference", **config)
    toy = Toy(pool, fail_at_round=2)
    with pytest.raises(RuntimeError, match="interrupted"):
        _run(pool, toy, tmp_path / "resumed", **config)
    saved = json.loads((tmp_path / "resumed" / "state.json").read_text())
    assert saved["completed_rounds"] == 2 and not saved["complete"]
    resumed = _run(pool, toy, tmp_path / "resumed", **config)
    assert toy.fine_tune_rounds == [0, 1, 2, 3, 4]  # rounds 0 and 1 were not redone
    assert resumed.labelled_ids == reference.labelled_ids
    assert resumed.rounds == reference.rounds and resumed.acquisitions == reference.acquisitions
    assert json.loads(resumed.state_path.read_text()) == json.loads(reference.state_path.read_text())
    finished = Toy(pool)
    assert _run(pool, finished, tmp_path / "resumed", **config).rounds == reference.rounds
    assert finished.fine_tune_rounds == []  # a complete run is not redone


def test_determinism_by_seed(pool: list[Case], tmp_path: Path) -> None:
    config = {"strategy": "random", "initial": 3, "batch": 3, "rounds": 2}
    a = _run(pool, Toy(pool), tmp_path / "a", seed=11, **config)
    b = _run(pool, Toy(pool), tmp_path / "b", seed=11, **config)
    c = _run(pool, Toy(pool), tmp_path / "c", seed=12, **config)
    assert a.labelled_ids == b.labelled_ids
    assert a.labelled_ids != c.labelled_ids


def test_resume_refuses_other_settings_or_pool(pool: list[Case], tmp_path: Path) -> None:
    _run(pool, Toy(pool), tmp_path, strategy="random", initial=2, batch=2, rounds=1, seed=0)
    with pytest.raises(InputError, match="other settings"):
        _run(pool, Toy(pool), tmp_path, strategy="random", initial=2, batch=2, rounds=2, seed=0)
    with pytest.raises(InputError, match="another pool"):
        _run(pool[:-1], Toy(pool), tmp_path, strategy="random", initial=2, batch=2, rounds=1, seed=0)


def test_loop_stops_when_the_pool_is_exhausted(tmp_path: Path) -> None:
    pool = [_case(i) for i in range(6)]
    result = _run(pool, Toy(pool), tmp_path, strategy="sqa", initial=2, batch=3, rounds=5, seed=0)
    assert [r["num_labelled"] for r in result.rounds] == [2, 5, 6]
    assert [len(r["selected"]) for r in result.rounds] == [3, 1, 0]
    assert result.complete and sorted(result.labelled_ids) == [c.case_id for c in pool]


def test_counts_from_fractions_and_bad_settings() -> None:
    assert resolve_count(0.1, 30) == 3 and resolve_count(0.001, 30) == 1 and resolve_count(5, 30) == 5
    for bad in (0, -0.5, 2.5, True, float("nan")):
        with pytest.raises(InputError):
            resolve_count(bad, 30)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="unknown strategy"):
        ActiveLearningConfig(strategy="magic")
    with pytest.raises(InputError, match="cold_start"):
        ActiveLearningConfig(cold_start="clever")  # type: ignore[arg-type]


def test_missing_scores_raise(pool: list[Case], tmp_path: Path) -> None:
    toy = Toy(pool)
    with pytest.raises(ValueError, match="'bald'"):
        _run(pool, toy, tmp_path, strategy="bald", initial=2, batch=2, rounds=1, seed=0)
