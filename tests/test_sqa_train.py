"""SQA training and scoring glue, the SQA active-learning run and the label-efficiency benchmark (micro runs)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from conftest import StubSegmenter, disc_case
from frugalseg.active.correction import CORRECTION_EFFORT
from frugalseg.data.case import IGNORE, Case, Dataset
from frugalseg.data.phantom import make_phantom_dataset
from frugalseg.engine.al_bench import QUICK_MAX_TEST, bench_al
from frugalseg.engine.al_reference import random_subset
from frugalseg.engine.al_report import _first_reaching, versus_from_scratch, versus_random
from frugalseg.engine.al_run import load_sqa_network, run_al, trained_from_scratch
from frugalseg.engine.config import TrainConfig
from frugalseg.engine.preprocess import image_to_tensor
from frugalseg.engine.quality_bench import bench_quality
from frugalseg.engine.sqa_train import evaluate_sqa, fine_tune_sqa, predict_with_quality
from frugalseg.errors import InputError
from frugalseg.metrics import dice_score
from frugalseg.models.sqa import SQANet
from frugalseg.quality import predicted_dice

CONFIG = TrainConfig(model="sqa_test", size=32, epochs=1, batch_size=4, lr=3e-3)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def phantom() -> Dataset:
    return make_phantom_dataset(24, size=48)


def _discs(n: int, *, size: int = 40) -> list[Case]:
    return [disc_case(i, size=size) for i in range(n)]


def _train(cases: list[Case], *, seed: int = 0, **kwargs: Any) -> SQANet:
    return fine_tune_sqa(
        None, cases, config=CONFIG, epochs=1, generator=torch.Generator().manual_seed(seed), num_classes=3, **kwargs
    )


def test_fine_tune_steps_determinism_and_warm_start() -> None:
    cases = _discs(6)
    records: list[dict[str, Any]] = []
    network = _train(cases, progress=records.append)
    assert isinstance(network, SQANet) and not network.training
    assert [r["step"] for r in records] == [1, 2]  # ceil(6 / 4) steps for one epoch
    assert all(math.isfinite(r["loss"]) and r["loss"] >= r["segmentation"] - 1e-6 for r in records)
    twin = _train(cases)
    for key, value in network.state_dict().items():
        assert torch.equal(value, twin.state_dict()[key]), key
    before = {k: v.clone() for k, v in network.state_dict().items()}
    steps: list[dict[str, Any]] = []
    warm = fine_tune_sqa(
        network,
        cases[:2],
        config=CONFIG,
        epochs=1,
        generator=torch.Generator().manual_seed(1),
        num_classes=3,
        min_steps=3,
        progress=steps.append,
    )
    assert warm is network and len(steps) == 3  # min_steps beats ceil(2 / 2) = 1
    assert any(not torch.equal(before[k], v) for k, v in warm.state_dict().items())


def test_fine_tune_rejects_non_sqa_models_and_wrong_classes() -> None:
    with pytest.raises(InputError, match="segmentation-quality"):
        fine_tune_sqa(
            None,
            _discs(2),
            config=dataclasses.replace(CONFIG, model="unet_test"),
            epochs=1,
            generator=torch.Generator(),
            num_classes=3,
        )
    with pytest.raises(ValueError, match="classes"):
        fine_tune_sqa(_train(_discs(2)), _discs(2), config=CONFIG, epochs=1, generator=torch.Generator(), num_classes=4)
    with pytest.raises(InputError, match="at least one"):
        _train([])


def test_fine_tune_accepts_partial_labels() -> None:
    case = _discs(1)[0]
    partial = case.label.copy()
    partial[::2] = IGNORE
    network = _train([dataclasses.replace(case, label=partial), *_discs(2)])
    assert isinstance(network, SQANet)


def test_predict_with_quality_maps_scores_and_features() -> None:
    network = _train(_discs(4))
    wide = dataclasses.replace(_discs(1)[0], image=np.zeros((30, 52), dtype=np.uint8) + 7, label=None)
    cases = [*_discs(3), wide]
    predictions = predict_with_quality(network, cases, size=32, features=True, batch_size=2)
    assert len(predictions) == 4
    for case, p in zip(cases, predictions, strict=True):
        assert p.probabilities is not None and p.label is not None and p.error_prob is not None
        assert p.probabilities.shape == (3, *case.shape) and p.label.shape == case.shape
        assert np.array_equal(p.label, p.probabilities.argmax(axis=0))
        assert p.error_prob.shape == case.shape and 0 <= p.error_prob.min() <= p.error_prob.max() <= 1
        assert p.predicted_dice.shape == (2,) and p.quality == pytest.approx(p.predicted_dice.mean())
        assert 0 <= p.entropy <= math.log(3) and p.bald is None
        assert p.features is not None and p.features.shape == (16,)  # deepest sqa_test stage: 16 channels
    # the predicted Dice is quality.predicted_dice of the network's own outputs at its input size
    x = image_to_tensor(cases[0].image, size=32, in_channels=1)[None]
    with torch.no_grad():
        output = network(x)
    probs = torch.softmax(output.logits, dim=1)
    error = torch.sigmoid(output.error_logits + network.error_prior_shift())  # calibrated by default
    expected = predicted_dice(probs.argmax(1), error, num_classes=3, probabilities=probs)
    np.testing.assert_allclose(predictions[0].predicted_dice, expected[0].numpy(), rtol=1e-5, atol=1e-6)
    light = predict_with_quality(network, cases, size=32, keep_maps=False)
    assert light[0].label is None and light[0].features is None
    assert [p.quality for p in light] == pytest.approx([p.quality for p in predictions])


def test_error_prevalence_shift() -> None:
    network = _train(_discs(4))
    prevalence = float(network.error_prevalence)
    assert 0.0 < prevalence < 1.0 and prevalence != 0.5  # recorded in training
    cases = _discs(2)
    default = predict_with_quality(network, cases, size=32, keep_maps=False)
    recorded = predict_with_quality(network, cases, size=32, keep_maps=False, error_prevalence=prevalence)
    raw = predict_with_quality(network, cases, size=32, keep_maps=False, error_prevalence=0.5)
    assert [p.quality for p in default] == pytest.approx([p.quality for p in recorded])
    # the calibrated map moves away from the 50/50 reading towards the recorded prevalence
    assert all((d.error_fraction < r.error_fraction) == (prevalence < 0.5) for d, r in zip(default, raw, strict=True))
    with pytest.raises(ValueError, match="error_prevalence"):
        predict_with_quality(network, cases, size=32, error_prevalence=1.0)


def test_mc_dropout_scores_are_seeded_and_leave_global_state_alone() -> None:
    network = _train(_discs(4), dropout=0.3)
    cases = _discs(3)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = predict_with_quality(network, cases, size=32, mc_samples=4, keep_maps=False, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    b = predict_with_quality(network, cases, size=32, mc_samples=4, keep_maps=False, seed=5)
    assert all(p.bald is not None and p.bald >= 0 and p.predictive_entropy is not None for p in a)
    assert [p.bald for p in a] == [p.bald for p in b]
    assert any(p.bald > 0 for p in a)  # dropout masks differ between passes
    # BALD never exceeds the predictive entropy (mutual information <= entropy)
    assert all(p.bald <= p.predictive_entropy + 1e-9 for p in a)
    assert not network.training and all(not m.training for m in network.modules())
    plain = _train(_discs(4), dropout=0.0)
    with pytest.raises(ValueError, match="dropout"):
        predict_with_quality(plain, cases, size=32, mc_samples=2)


def test_evaluate_sqa_matches_dice_of_its_predictions() -> None:
    network = _train(_discs(4))
    cases = _discs(3)
    report = evaluate_sqa(network, cases, size=32, class_names=["background", "inner", "ring"], error_map=True)
    predictions = predict_with_quality(network, cases, size=32)
    per_case = [
        np.mean([dice_score(p.label == c, case.label == c) for c in (1, 2)])
        for case, p in zip(cases, predictions, strict=True)
    ]
    assert report["dice_mean"] == pytest.approx(float(np.mean(per_case)))
    assert set(report["dice_per_class"]) == {"inner", "ring"}
    assert set(report["quality"]) == set(report["quality_flips"]) == {"pearson", "spearman", "mae"}
    assert set(report["error_map"]) == {"auroc", "ap"}


def _pool(phantom: Dataset) -> tuple[Dataset, list[Case]]:
    return dataclasses.replace(phantom, cases=phantom.cases[:18]), phantom.cases[18:]


def _run_al(pool: Dataset, test: list[Case], out: Path, **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "strategy": "sqa",
        "initial": 4,
        "batch": 4,
        "rounds": 2,
        "seed": 0,
        "size": 32,
        "epochs_per_round": 1,
        "test_cases": test,
        "model": "sqa_test",
        "batch_size": 4,
    }
    return run_al(pool, out_dir=out, **(options | kwargs))


def test_two_round_sqa_loop_on_phantom_frames(phantom: Dataset, tmp_path: Path) -> None:
    pool, test = _pool(phantom)
    result = _run_al(pool, test, tmp_path / "run")
    assert [r["num_labelled"] for r in result.rounds] == [4, 8, 12]
    assert len(set(result.labelled_ids)) == 12 and result.complete
    for record in result.rounds:
        assert 0.0 <= record["metrics"]["dice_mean"] <= 1.0
        assert set(record["metrics"]["dice_per_class"]) == {"lumen", "vessel_wall"}
    corrected = [a for a in result.acquisitions if a["round"] >= 0]
    assert len(corrected) == 8 and all(a["cost"] is not None for a in corrected)
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["round_01.pt", "round_02.pt", "settings.json", "state.json"]
    with pytest.raises(InputError, match="other settings"):
        _run_al(pool, test, tmp_path / "run", epochs_per_round=2)


@pytest.mark.parametrize(
    ("strategy", "option", "estimate"),
    [("sqa_flips", {"flips": True}, "flip_quality"), ("sqa_shape", {"shape": "ellipse"}, "shape_quality")],
)
def test_sqa_variants_rank_the_pool_by_their_estimate(
    phantom: Dataset, tmp_path: Path, strategy: str, option: dict[str, Any], estimate: str
) -> None:
    pool, test = _pool(phantom)
    trained = {"rounds": 1, "epochs_per_round": 8}  # a network that finds the objects, so shapes differ
    plain = _run_al(pool, test, tmp_path / "sqa", **trained)
    variant = _run_al(pool, test, tmp_path / strategy, strategy=strategy, **trained)
    assert variant.labelled_ids[:4] == plain.labelled_ids[:4]  # same cold start and first network
    unlabelled = [c for c in pool.cases if c.case_id not in variant.labelled_ids[:4]]
    # the cold start's network, as the loop saved it, rates the pool: the loop took the worst four by the estimate
    path = tmp_path / strategy / "round_00.pt"
    first = load_sqa_network(path, "sqa_test", in_channels=1, num_classes=3, dropout=0.1)
    rated = predict_with_quality(first, unlabelled, size=32, keep_maps=False, **option)
    values = {case.case_id: getattr(p, estimate) for case, p in zip(unlabelled, rated, strict=True)}
    selected = variant.rounds[0]["selected"]
    assert len(set(values.values())) > 4 and len(selected) == 4
    assert max(values[i] for i in selected) <= min(v for i, v in values.items() if i not in selected)  # ties


def test_box_acquisitions_train_on_the_foundation_models_masks(phantom: Dataset, tmp_path: Path) -> None:
    pool, test = _pool(phantom)
    stub = StubSegmenter(follow_box=True)
    result = _run_al(pool, test, tmp_path / "run", rounds=1, acquire="boxes", segmenter=stub)
    assert result.complete and len(result.labelled_ids) == 8
    for acquisition in result.acquisitions:  # a box per object costs less than outlining the objects
        assert acquisition["kind"] == "boxes" and acquisition["cost"] is None
        assert 0 < acquisition["seconds"] < acquisition["scratch_seconds"]
    assert stub.encoded == 8  # each image's pseudo-mask is made once, though round 1 trains on round 0's too
    with pytest.raises(InputError, match="acquire='polygons'"):
        _run_al(pool, test, tmp_path / "other", acquire="polygons")


def test_box_assisted_loop_records_the_route_and_full_labels(phantom: Dataset, tmp_path: Path) -> None:
    pool, test = _pool(phantom)
    stub = StubSegmenter(follow_box=True)  # outlines each box as the box itself
    result = _run_al(pool, test, tmp_path / "run", rounds=1, assist=True, segmenter=stub)
    assert result.complete and stub.encoded > 0
    routes = [a["cost"]["route"] for a in result.acquisitions if a["cost"] is not None]
    assert routes and set(routes) <= {"prediction", "box"}
    review = CORRECTION_EFFORT.review_seconds  # no route costs more than clearing the prediction and drawing
    assert all(a["kind"] == "full" and a["seconds"] <= a["scratch_seconds"] + review for a in result.acquisitions)
    settings = json.loads((tmp_path / "run" / "settings.json").read_text())
    assert settings["assist"] == "box" and "box_fit" not in settings  # off: absent, so older folders resume
    with pytest.raises(InputError, match="full labels"):
        _run_al(pool, test, tmp_path / "other", assist=True, acquire="boxes", segmenter=stub)


def test_final_training_is_the_reference_training_on_the_acquired_labels(
    phantom: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool, test = _pool(phantom)
    result = _run_al(pool, test, tmp_path / "run", rounds=1, final_steps=6)
    assert result.final is not None and result.final["steps"] == 6 and result.final["num_labelled"] == 8
    assert (tmp_path / "run" / "final.pt").exists()
    assert json.loads((tmp_path / "run" / "final.json").read_text()) == result.final
    # the same training as a from-scratch reference on those cases: same seed, same schedule, same Dice
    by_id = {case.case_id: case for case in pool.cases}
    labelled = [by_id[case_id] for case_id in result.labelled_ids]
    config = TrainConfig(model="sqa_test", size=32, epochs=1, batch_size=4, lr=3e-3, seed=0)
    _, again = trained_from_scratch(
        labelled, test, config=config, steps=6, num_classes=pool.num_classes, dropout=0.1, class_names=pool.class_names
    )
    assert again["dice_mean"] == pytest.approx(result.final["dice_mean"])

    def no_training(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a finished final training was run again")

    monkeypatch.setattr("frugalseg.engine.al_run.trained_from_scratch", no_training)
    assert _run_al(pool, test, tmp_path / "run", rounds=1, final_steps=6).final == result.final  # resumed
    with pytest.raises(InputError, match="final_steps"):
        _run_al(pool, test, tmp_path / "weak", rounds=1, final_steps=6, acquire="scribbles")


def test_interrupted_sqa_run_resumes_to_the_same_result(phantom: Dataset, tmp_path: Path) -> None:
    pool, test = _pool(phantom)
    reference = _run_al(pool, test, tmp_path / "reference", rounds=1, strategy="entropy")

    def stop_after_round_0(record: dict[str, Any]) -> None:
        if record["round"] == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run_al(pool, test, tmp_path / "resumed", rounds=1, strategy="entropy", progress=stop_after_round_0)
    resumed = _run_al(pool, test, tmp_path / "resumed", rounds=1, strategy="entropy")
    assert resumed.labelled_ids == reference.labelled_ids
    # the resumed round warm-starts from the saved weights of round 0: the same network, the same Dice
    assert resumed.rounds == reference.rounds


def test_bench_al_micro_run_writes_json_and_plot(phantom: Dataset, tmp_path: Path) -> None:
    pool, test = _pool(phantom)
    json_path = tmp_path / "al.json"
    report = bench_al(
        pool,
        test,
        strategies=["random", "sqa"],
        seeds=1,
        json_path=json_path,
        quick=True,
        initial=1,
        batch=2,
        rounds=1,
        size=32,
        epochs_per_round=1,
        model="sqa_test",
        batch_size=4,
        cold_start="diverse",
        from_scratch=[6],
        reference_steps=9,
        log=lambda _line: None,
    )
    saved = json.loads(json_path.read_text())
    assert set(saved) >= {"strategies", "quality", "effort", "full", "num_pool", "num_test", "versus_random"}
    assert saved["settings"]["cold_start"] == "diverse"
    run_settings = json.loads((tmp_path / "al-runs" / "sqa" / "seed0" / "settings.json").read_text())
    assert run_settings["loop"]["cold_start"] == "diverse"  # passed down to every run
    assert saved["versus_random"] == {}  # the curves start above 5 % labelled: nothing to compare there
    assert set(saved["strategies"]) == {"random", "sqa"}
    sqa = saved["strategies"]["sqa"]
    assert [p["fraction"] for p in sqa["curve"]] == pytest.approx([1 / 18, 3 / 18])
    assert set(sqa["curve"][0]) >= {"fraction", "dice_mean", "dice_std"} and sqa["curve"][0]["dice_std"] == 0.0
    # 10 % lies between the two points: linear interpolation, over the fully supervised Dice
    at_10 = np.interp(0.1, [1 / 18, 3 / 18], [p["dice_mean"] for p in sqa["curve"]])
    assert sqa["dice_at_10pct"] == pytest.approx(at_10) and sqa["dice_at_5pct"] is None
    full = saved["full"]["dice_mean"]
    expected = at_10 / full if full > 0 else None
    assert sqa["fraction_of_full_at_10pct"] == (pytest.approx(expected) if expected is not None else None)
    assert set(saved["quality"]) >= {"pearson", "spearman"} and saved["quality"]["flips"]["mae"] is not None
    assert set(saved["effort"]["strategies"]["sqa"]) >= {"assisted_seconds", "scratch_seconds", "ratio"}
    assert saved["effort"]["pool_scratch_seconds"] > saved["effort"]["strategies"]["sqa"]["scratch_seconds"]
    reached = saved["effort"]["strategies"]["sqa"]["to_99pct_of_full"]
    if reached is not None:
        assert reached["of_pool_scratch_seconds"] == pytest.approx(
            reached["assisted_seconds"] / saved["effort"]["pool_scratch_seconds"]
        )
    assert json_path.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["num_pool"] == 18 and report["num_test"] == 6
    # the passive route: 6 random cases trained from scratch, then the whole pool (the reference itself)
    passive = saved["from_scratch"]
    assert [p["num_labelled"] for p in passive] == [6, 18] and passive[-1]["dice_mean"] == full
    assert passive[-1]["effort_seconds"] == saved["effort"]["pool_scratch_seconds"] > passive[0]["effort_seconds"]
    assert (tmp_path / "al-runs" / "from_scratch" / "n6_seed0.json").exists()
    same = saved["effort"]["strategies"]["sqa"]["same_final_dice"]
    assert same["dice"] == sqa["curve"][-1]["dice_mean"]
    assert same["assisted_seconds"] == saved["effort"]["strategies"]["sqa"]["assisted_seconds"]
    # each run ends with its 3 acquired cases trained from scratch under the subsets' protocol
    retrained = json.loads((tmp_path / "al-runs" / "sqa" / "seed0" / "final.json").read_text())
    assert retrained["num_labelled"] == 3 and sqa["retrained"]["dice_by_seed"] == [retrained["dice_mean"]]
    assert sqa["retrained"]["fraction"] == pytest.approx(3 / 18)
    assert saved["effort"]["strategies"]["sqa"]["same_final_dice_retrained"]["dice"] == retrained["dice_mean"]
    # the reference trains longer than the loop's steps; the subsets and final trainings do not
    subset_steps = json.loads((tmp_path / "al-runs" / "from_scratch" / "n6_seed0.json").read_text())["options"]["steps"]
    assert retrained["steps"] == max(subset_steps, 1) and subset_steps < 9
    assert json.loads((tmp_path / "al-runs" / "full" / "seed0.json").read_text())["options"]["steps"] == 9
    assert saved["settings"]["reference_steps"] == 9 and saved["settings"]["retrain"]


def _tiny_bench(phantom: Dataset, tmp_path: Path, **kwargs: Any) -> dict[str, Any]:
    """One SQA seed of a quick bench: cold start 2, one round of 2, at 32 px."""
    pool, test = _pool(phantom)
    return bench_al(
        pool,
        test,
        strategies=["sqa"],
        seeds=1,
        json_path=tmp_path / "al.json",
        quick=True,
        initial=2,
        batch=2,
        rounds=1,
        size=32,
        model="sqa_test",
        epochs_per_round=1,
        batch_size=4,
        log=lambda _line: None,
        **kwargs,
    )


def test_bench_al_retrain_sets_the_final_trainings_steps(phantom: Dataset, tmp_path: Path) -> None:
    report = _tiny_bench(phantom, tmp_path, retrain=True, final_steps=5)
    final = json.loads((tmp_path / "al-runs" / "sqa" / "seed0" / "final.json").read_text())
    assert final["steps"] == 5 and report["settings"]["final_steps"] == 5
    assert report["strategies"]["sqa"]["retrained"]["dice_by_seed"] == [final["dice_mean"]]
    assert report["strategies"]["sqa"]["retrained"]["quality"]["mae"] == final["quality"]["mae"]
    assert report["strategies"]["sqa"]["retrained"]["quality"]["flips"]["mae"] == final["quality_flips"]["mae"]
    assert report["from_scratch"] is None  # retraining alone trains no passive route


def test_bench_al_passive_subsets_train_as_long_as_the_final_trainings(phantom: Dataset, tmp_path: Path) -> None:
    report = _tiny_bench(phantom, tmp_path, from_scratch=[4], final_steps=7)
    runs = tmp_path / "al-runs"
    subset = json.loads((runs / "from_scratch" / "n4_seed0.json").read_text())
    final = json.loads((runs / "sqa" / "seed0" / "final.json").read_text())
    assert subset["options"]["steps"] == final["steps"] == 7  # one protocol for the two routes
    assert json.loads((runs / "full" / "seed0.json").read_text())["options"]["steps"] == 7  # never shorter
    assert [p["num_labelled"] for p in report["from_scratch"]] == [4, 18]
    effort = report["effort"]["strategies"]["sqa"]
    (own,) = effort["same_final_dice_retrained_by_seed"]  # one seed: its own curve is the mean curve
    assert own == effort["same_final_dice_retrained"] and own["dice"] == final["dice_mean"]
    assert report["from_scratch"][0]["effort_by_seed"] == [report["from_scratch"][0]["effort_seconds"]]
    # the trained networks are kept beside their records, which tell bench quality the model (not the default
    # sqa_small at 128 px): re-scored, they give the recorded Dice
    pool, test = _pool(phantom)
    kept = [runs / "full" / "seed0.pt", runs / "from_scratch" / "n4_seed0.pt"]
    rescored = bench_quality(pool, kept, tmp_path / "q.json", test_cases=test[:QUICK_MAX_TEST])
    recorded = [json.loads(path.with_suffix(".json").read_text())["dice_mean"] for path in kept]
    assert [n["dice_mean"] for n in rescored["networks"]] == pytest.approx(recorded)


def test_bench_al_refuses_a_from_scratch_route_for_weak_labels(phantom: Dataset, tmp_path: Path) -> None:
    pool, test = _pool(phantom)
    with pytest.raises(InputError, match="from_scratch"):
        bench_al(
            pool, test, strategies=["sqa"], seeds=1, json_path=tmp_path / "al.json", acquire="boxes", from_scratch=[6]
        )
    assert not (tmp_path / "al-runs").exists()  # refused before any training


def test_random_subsets_are_seeded_and_nested() -> None:
    pool = _discs(20, size=16)
    small, large = random_subset(pool, 4, seed=3), random_subset(pool, 10, seed=3)
    assert [c.case_id for c in small] == [c.case_id for c in random_subset(pool, 4, seed=3)]
    assert {c.case_id for c in small} < {c.case_id for c in large}
    assert [c.case_id for c in large] == sorted(c.case_id for c in large)  # in pool order
    assert {c.case_id for c in random_subset(pool, 10, seed=4)} != {c.case_id for c in large}


def test_effort_for_the_same_dice_is_bracketed_by_the_from_scratch_points() -> None:
    passive = [
        {"fraction": 0.1, "dice_mean": 0.950, "effort_seconds": 1000.0},
        {"fraction": 0.2, "dice_mean": 0.958, "effort_seconds": 2000.0},
        {"fraction": 1.0, "dice_mean": 0.966, "effort_seconds": 10000.0},
    ]
    between = versus_from_scratch(0.9605, 300.0, passive)  # reached between 20 % and the whole pool
    assert between["from_scratch_fraction_between"] == [0.2, 1.0]
    assert between["ratio_at_most"] == pytest.approx(0.15) and between["ratio_at_least"] == pytest.approx(0.03)
    early = versus_from_scratch(0.94, 300.0, passive)  # even the smallest subset reaches it: no upper bound
    assert early["from_scratch_fraction_between"] == [None, 0.1]
    assert early["ratio_at_most"] is None and early["ratio_at_least"] == pytest.approx(0.3)
    beyond = versus_from_scratch(0.97, 300.0, passive)  # drawing the whole pool does not reach it
    assert beyond["from_scratch_fraction_between"] == [1.0, None]
    assert beyond["ratio_at_most"] == pytest.approx(0.03) and beyond["ratio_at_least"] is None


def test_effort_to_reach_a_dice_is_interpolated_between_rounds() -> None:
    curve = [
        {"fraction": 0.02, "dice_mean": 0.90, "effort_seconds": 100.0},
        {"fraction": 0.04, "dice_mean": 0.94, "effort_seconds": 150.0},
        {"fraction": 0.06, "dice_mean": 0.93, "effort_seconds": 190.0},
    ]
    assert _first_reaching(curve, 0.93) == pytest.approx((0.035, 137.5))  # first crossing, not the later dip
    assert _first_reaching(curve, 0.85) == pytest.approx((0.02, 100.0))
    assert _first_reaching(curve, 0.95) is None


def test_lead_over_random_is_paired_by_seed() -> None:
    # seed 1's cold start is worse for both strategies: the curves spread widely, the differences do not
    strategies = {
        "random": {"dice_at_5pct_by_seed": [0.94, 0.90, 0.93], "dice_at_5pct_spread": 0.0208},
        "sqa": {"dice_at_5pct_by_seed": [0.95, 0.912, 0.939], "dice_at_5pct_spread": 0.0195},
        "entropy": {"dice_at_5pct_by_seed": [None, None, None], "dice_at_5pct_spread": None},
    }
    report = versus_random(strategies, [0, 1, 2])
    assert set(report) == {"sqa"}  # no curve at 5 %: nothing to compare
    sqa = report["sqa"]
    assert sqa["difference_at_5pct_by_seed"] == pytest.approx([0.01, 0.012, 0.009])
    assert sqa["difference_mean"] == pytest.approx(0.010333, abs=1e-6)
    assert sqa["curve_spread"] == 0.0208 and not sqa["beats_random_by_more_than_curve_spread"]
    assert sqa["difference_spread"] == pytest.approx(0.001528, abs=1e-6)
    assert sqa["beats_random_by_more_than_difference_spread"]
    assert versus_random({"sqa": strategies["sqa"]}, [0, 1, 2]) == {}
