"""Engine contracts: preprocessing, augmentation, train/predict/evaluate, resume, bad run directories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.draw import ellipse

from conftest import TINY
from frugalseg.data.case import IGNORE
from frugalseg.data.images import read_mask, write_image_png
from frugalseg.engine.augment import augment_batch
from frugalseg.engine.config import TrainConfig, load_config
from frugalseg.engine.evaluate import evaluate_model
from frugalseg.engine.inference import SegmentationModel
from frugalseg.engine.postprocess import apply_postprocess, choose_postprocess, moment_ellipse
from frugalseg.engine.predict import predict_folder
from frugalseg.engine.preprocess import image_to_tensor, label_to_tensor
from frugalseg.engine.train import train
from frugalseg.errors import InputError
from frugalseg.metrics import dice_score


def test_image_to_tensor_is_zscored_and_resized() -> None:
    image = np.random.default_rng(0).uniform(0, 255, (40, 60)).astype(np.uint8)
    tensor = image_to_tensor(image, size=32, in_channels=3)
    assert tensor.shape == (3, 32, 32)
    assert torch.allclose(tensor.mean(dim=(1, 2)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(tensor.std(dim=(1, 2)), torch.ones(3), atol=1e-4)


def test_image_with_nan_is_refused() -> None:
    image = np.zeros((8, 8), dtype=np.float32)
    image[2, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        image_to_tensor(image, size=8, in_channels=1)


def test_label_resize_keeps_majority_class_and_ignore() -> None:
    label = np.zeros((64, 64), dtype=np.uint8)
    label[:, 32:] = 1
    label[:16, :] = IGNORE
    small = label_to_tensor(label, size=16, num_classes=2)
    assert small[8:, :8].eq(0).all() and small[8:, 8:].eq(1).all() and small[:4].eq(IGNORE).all()


def test_label_out_of_range_is_refused() -> None:
    with pytest.raises(InputError, match="outside"):
        label_to_tensor(np.full((4, 4), 3, dtype=np.uint8), size=4, num_classes=2)


def test_augmentation_is_replayed_by_seed_and_keeps_label_values() -> None:
    images = torch.randn(4, 1, 32, 32)
    labels = torch.randint(0, 3, (4, 32, 32))
    first = augment_batch(images, labels, generator=torch.Generator().manual_seed(7))
    second = augment_batch(images, labels, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert set(first[1].unique().tolist()) <= {0, 1, 2, IGNORE}


def test_largest_component_postprocess_fills_background_holes_only() -> None:
    label = np.zeros((20, 20), dtype=np.uint8)
    label[2:12, 2:12] = 1
    label[5:7, 5:7] = 0  # a background hole
    label[8:10, 8:10] = 2  # a nested class, not to be overwritten
    label[15:17, 15:17] = 1  # a stray small component
    cleaned = apply_postprocess(label, {1: "largest"})
    assert cleaned[5, 5] == 1 and cleaned[8, 8] == 2 and cleaned[15, 15] == 0


def test_moment_ellipse_recovers_a_noisy_ellipse() -> None:
    truth = np.zeros((120, 160), dtype=bool)
    rows, cols = ellipse(60, 80, 30, 50, shape=truth.shape, rotation=0.4)
    truth[rows, cols] = True
    noisy = truth.copy()
    noisy[::7, ::5] = False  # speckled holes
    noisy[5:9, 5:9] = True  # a stray blob
    fitted = moment_ellipse(noisy)
    assert dice_score(fitted, truth) > max(0.98, dice_score(noisy, truth))


def test_choose_postprocess_prefers_none_unless_it_helps() -> None:
    truth = np.zeros((30, 30), dtype=np.uint8)
    truth[5:20, 5:20] = 1
    stray = truth.copy()
    stray[25:28, 25:28] = 1
    assert choose_postprocess([truth], [truth], num_classes=2, score=dice_score) == {1: "none"}
    assert choose_postprocess([stray], [truth], num_classes=2, score=dice_score)[1] == "largest"


def test_config_round_trip_and_schema_check(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(TINY.to_dict()))
    assert load_config(path) == TINY
    path.write_text(json.dumps({**TINY.to_dict(), "schema_version": 99}))
    with pytest.raises(InputError, match="schema version"):
        load_config(path)


def test_invalid_config_is_refused() -> None:
    with pytest.raises(InputError, match="epochs"):
        TrainConfig(epochs=0)


def test_train_predict_evaluate_and_resume(tmp_path: Path, disc_dataset) -> None:
    run = tmp_path / "run"
    result = train(disc_dataset, TINY, run)
    assert result.epochs_run == 2
    for name in ("config.json", "model.pt", "checkpoint.pt", "log.jsonl", "metrics.json", "split.json"):
        assert (run / name).is_file(), name
    assert len((run / "log.jsonl").read_text().splitlines()) == 2

    with pytest.raises(InputError, match="already holds files"):
        train(disc_dataset, TINY, run)

    # Resuming a finished run trains no further; raising the epoch budget in config.json continues it.
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "epochs": 3}))
    resumed = train(disc_dataset, TINY, run, resume=True)
    assert resumed.epochs_run == 3
    assert [r["epoch"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())] == [1, 2, 3]

    model = SegmentationModel.load(run)
    report = evaluate_model(model, disc_dataset.cases[:4])
    assert report["num_cases"] == 4 and set(report["per_class"]) == {"inner", "ring"}
    assert 0.0 <= report["mean"]["dice"] <= 1.0

    images = tmp_path / "images"
    for case in disc_dataset.cases[:2]:
        write_image_png(images / f"{case.case_id}.png", case.image)
    (images / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "pred"
    predict_report = predict_folder(run, images, out)
    assert predict_report.written == 2 and len(predict_report.failures) == 1
    assert "broken.png" in predict_report.failures[0]
    mask = read_mask(out / "disc000.png", expected_shape=(48, 48))
    assert mask.shape == (48, 48) and mask.max() <= 2
    assert (out / "disc000_prob_ring.png").is_file()


def test_resume_without_run_and_missing_model_fail_clearly(tmp_path: Path, disc_dataset) -> None:
    with pytest.raises(InputError, match="nothing to resume"):
        train(disc_dataset, TINY, tmp_path / "none", resume=True)
    with pytest.raises(InputError, match="no trained model"):
        SegmentationModel.load(tmp_path / "none")


def test_corrupt_checkpoint_is_reported(tmp_path: Path, disc_dataset) -> None:
    run = tmp_path / "run"
    train(disc_dataset, TINY, run)
    (run / "checkpoint.pt").write_bytes(b"\x00" * 10)
    with pytest.raises(InputError, match="corrupt"):
        train(disc_dataset, TINY, run, resume=True)


def test_training_is_deterministic_by_seed(tmp_path: Path, disc_dataset) -> None:
    train(disc_dataset, TINY, tmp_path / "a")
    train(disc_dataset, TINY, tmp_path / "b")
    log_a = [json.loads(line)["train_loss"] for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    log_b = [json.loads(line)["train_loss"] for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert log_a == pytest.approx(log_b, rel=1e-5)
