"""The command line: one clear line for bad input, and the main subcommands end to end on tiny data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from frugalseg.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_missing_folder_gives_one_line(tmp_path: Path) -> None:
    result = run_cli("data", "describe", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "nowhere" in lines[0] and "Traceback" not in result.stderr


def test_missing_run_directory_gives_one_line(tmp_path: Path) -> None:
    result = run_cli("evaluate", "--model", str(tmp_path / "norun"), "--data", "phantom:4:64")
    assert result.returncode == 2 and "norun" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_train_then_evaluate_on_phantom(tmp_path: Path) -> None:
    run = tmp_path / "run"
    trained = run_cli(
        "train",
        "--data",
        "phantom:12:64",
        "--out",
        str(run),
        "--model",
        "unet_test",
        "--size",
        "32",
        "--epochs",
        "2",
        "--batch-size",
        "4",
    )
    assert trained.returncode == 0, trained.stderr
    report_path = tmp_path / "eval.json"
    evaluated = run_cli("evaluate", "--model", str(run), "--data", "phantom:4:64", "--json", str(report_path))
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(report_path.read_text())
    assert report["num_cases"] == 4
    assert set(report["per_class"]) == {"lumen", "vessel_wall"}
    assert {"dice", "hd95_mm"} <= set(report["mean"])


TINY_TRAIN = ("--model", "unet_test", "--size", "32", "--epochs", "1", "--batch-size", "4")


def test_simulated_boxes_pass_the_check_and_a_broken_box_is_named(tmp_path: Path) -> None:
    boxes = tmp_path / "boxes.json"
    simulated = run_cli("annotations", "simulate", "--data", "phantom:4:64", "--kind", "boxes", "--out", str(boxes))
    assert simulated.returncode == 0, simulated.stderr
    assert "4 boxes annotations" in simulated.stdout and "s per image" in simulated.stdout
    checked = run_cli("annotations", "check", "--data", "phantom:4:64", "--annotations", str(boxes))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no problem found" in checked.stdout

    document = json.loads(boxes.read_text())
    case_id = sorted(document["cases"])[0]
    document["cases"][case_id]["boxes"][0][1:] = [50, 10, 90, 30]  # xmax beyond the 64-px image
    boxes.write_text(json.dumps(document))
    broken = run_cli("annotations", "check", "--data", "phantom:4:64", "--annotations", str(boxes))
    assert broken.returncode == 1 and case_id in broken.stdout


def test_agreement_of_two_simulated_annotators(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    for path, seed in ((first, "0"), (second, "1")):
        made = run_cli(
            "annotations", "simulate", "--data", "phantom:4:64", "--kind", "boxes", "--box-jitter", "0.1",
            "--seed", seed, "--out", str(path),
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
    compared = run_cli(
        "annotations", "check", "--data", "phantom:4:64", "--annotations", str(first), "--compare", str(second)
    )
    assert compared.returncode == 0, compared.stderr
    assert "boxes box_iou" in compared.stdout


def test_weak_training_from_simulated_scribbles_gives_a_run_evaluate_reads(tmp_path: Path) -> None:
    run = tmp_path / "run"
    trained = run_cli(
        "train", "--data", "phantom:12:64", "--out", str(run), "--labels", "scribbles", "--simulate", *TINY_TRAIN
    )
    assert trained.returncode == 0, trained.stderr
    assert json.loads((run / "weak_config.json").read_text())["labels"] == "scribbles"
    evaluated = run_cli("evaluate", "--model", str(run), "--data", "phantom:2:64")
    assert evaluated.returncode == 0, evaluated.stderr


def test_weak_labels_the_dataset_lacks_give_one_line(tmp_path: Path) -> None:
    result = run_cli("train", "--data", "phantom:6:64", "--out", str(tmp_path / "run"), "--labels", "points")
    assert result.returncode == 2 and "--labels points needs --annotations PATH or --simulate" in result.stderr
    assert "Traceback" not in result.stderr


def test_active_learning_loop_runs_and_reports_rounds(tmp_path: Path) -> None:
    out = tmp_path / "al"
    args = ("al", "--data", "phantom:16:64", "--test-data", "phantom:2:64", "--out", str(out), "--size", "32")
    result = run_cli(*args, "--initial", "4", "--batch", "25%", "--rounds", "1", "--epochs-per-round", "1")
    assert result.returncode == 0, result.stderr
    state = json.loads((out / "state.json").read_text())
    assert state["complete"] and len(state["labelled"]) == 8
    assert "round" in result.stdout
    last = sorted(out.glob("round_*.pt"))[-1]
    quality = ("bench", "quality", "--data", "phantom:16:64", "--test-data", "phantom:4:64", str(last), "--json")
    result = run_cli(*quality, str(tmp_path / "q.json"), "--shape", "ellipse")
    assert result.returncode == 0, result.stderr
    assert "quality_flips_shape" in json.loads((tmp_path / "q.json").read_text())["summary"]
    result = run_cli(*quality, str(tmp_path / "bad.json"), "--shape", "disc")
    assert result.returncode == 2 and "'disc'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "bad.json").exists()


def test_a_bad_count_is_refused() -> None:
    result = run_cli("al", "--data", "phantom:4:64", "--out", "x", "--initial", "two")
    assert result.returncode == 2 and "'two'" in result.stderr


def test_an_unknown_shape_prior_is_refused_before_anything_runs(tmp_path: Path) -> None:
    out = tmp_path / "pseudo"
    result = run_cli(
        "pseudolabel", "--data", "phantom:2:64", "--simulate", "boxes", "--out", str(out), "--shape", "disc"
    )
    assert result.returncode == 2 and "--shape disc" in result.stderr and "ellipse" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()
    args = ("pseudolabel", "--data", "phantom:2:64", "--simulate", "boxes", "--out", str(out))
    result = run_cli(*args, "--box-slack", "0.1")
    assert result.returncode == 2 and "needs a shape prior" in result.stderr and not out.exists()
    result = run_cli(*args, "--shape", "ellipse", "--box-slack", "0.1,wide")
    assert result.returncode == 2 and "'0.1,wide'" in result.stderr and "Traceback" not in result.stderr
    for options, message in (
        (("--box-snap", "0.03,0.02"), "needs a shape prior"),
        (("--shape", "ellipse", "--box-snap", "0.03"), "two fractions"),
        (("--box-widen", "1.5"), "--box-widen must be a fraction"),
    ):
        result = run_cli(*args, *options)
        said = " ".join(result.stderr.replace("│", " ").split())  # the error panel wraps its lines
        assert result.returncode == 2 and message in said and not out.exists(), said
