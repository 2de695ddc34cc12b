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
