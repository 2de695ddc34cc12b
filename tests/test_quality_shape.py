"""Shape agreement in the quality estimate: ellipse-like predictions score high, bent ones low, and it joins
the predicted Dice as a product in ``predict_with_quality``, ``evaluate_sqa`` and ``bench quality``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.draw import ellipse as draw_ellipse

from conftest import disc_case
from frugalseg.data.case import Case, Dataset
from frugalseg.engine.config import TrainConfig
from frugalseg.engine.quality_bench import bench_quality
from frugalseg.engine.sqa_train import evaluate_sqa, fine_tune_sqa, predict_with_quality, quality_estimates
from frugalseg.errors import InputError
from frugalseg.metrics import dice_score
from frugalseg.models.sqa import SQANet
from frugalseg.quality import calibration_report
from frugalseg.quality.shape import shape_agreement

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (120, 160)


def head(shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """An ``(H, W)`` uint8 label map holding one rotated ellipse (class 1)."""
    label = np.zeros(shape, dtype=np.uint8)
    rows, cols = draw_ellipse(60, 80, 35, 55, shape=shape, rotation=0.3)
    label[rows, cols] = 1
    return label


def test_an_ellipse_agrees_with_its_fit_and_a_larger_bulge_lowers_the_agreement_more() -> None:
    truth = head()
    assert shape_agreement(truth, num_classes=2)[0] > 0.99
    agreements = []
    for reach in (140, 145, 150):  # a bump out of the right side (its edge near column 133), ever further
        bulged = truth.copy()
        bulged[50:70, 120:reach] = 1
        agreements.append(shape_agreement(bulged, num_classes=2)[0])
    assert 0.99 > agreements[0] > agreements[1] > agreements[2]
    blob = truth.copy()
    blob[2:17, 2:17] = 1  # a stray blob apart from the head: counted against the fit of the largest part
    assert shape_agreement(blob, num_classes=2)[0] < shape_agreement(truth, num_classes=2)[0] - 0.01


def test_absent_classes_keep_their_estimate_and_unfittable_masks_score_zero() -> None:
    label = head()
    two_classes = shape_agreement(label, num_classes=3)  # class 2 absent
    assert two_classes[0] > 0.99 and two_classes[1] == 1.0
    tiny = np.zeros(SHAPE, dtype=np.uint8)
    tiny[10:12, 10:12] = 1  # too few outline points for a fit
    assert shape_agreement(tiny, num_classes=2).tolist() == [0.0]
    with pytest.raises(ValueError, match="one"):
        shape_agreement(label[None], num_classes=2)


def _network(cases: list[Case]) -> SQANet:
    """A tiny SQA network trained long enough to predict discs and rings of varying shape (2 s)."""
    config = TrainConfig(model="sqa_test", size=32, epochs=15, batch_size=4, lr=3e-3)
    return fine_tune_sqa(
        None, cases, config=config, epochs=15, generator=torch.Generator().manual_seed(0), num_classes=3
    )


def test_shape_agreement_joins_the_predicted_dice_as_a_product(tmp_path: Path) -> None:
    cases = [disc_case(i, size=40) for i in range(6)]
    network = _network(cases[:4])
    plain = predict_with_quality(network, cases, size=32, keep_maps=False, flips=True)
    shaped = predict_with_quality(network, cases, size=32, keep_maps=False, flips=True, shape="ellipse")
    kept = predict_with_quality(network, cases, size=32, keep_maps=True)
    assert all(p.shape_agreement is None and p.label is None for p in plain)
    for p, s, k in zip(plain, shaped, kept, strict=True):
        assert s.label is None and s.quality == pytest.approx(p.quality)  # the maps stay off, the estimate stays
        assert k.label is not None
        np.testing.assert_array_equal(s.shape_agreement, shape_agreement(k.label, num_classes=3))
    with pytest.raises(ValueError, match="shape"):
        predict_with_quality(network, cases, size=32, shape="circle")

    report = evaluate_sqa(network, cases, size=32, class_names=["background", "inner", "ring"], shape="ellipse")
    assert set(quality_estimates("ellipse")) <= set(report)
    truth = [
        np.mean([dice_score(k.label == c, case.label == c) for c in (1, 2)])
        for k, case in zip(kept, cases, strict=True)
    ]
    for name, dice in (("quality_shape", "predicted_dice"), ("quality_flips_shape", "flip_dice")):
        estimate = [float((getattr(s, dice) * s.shape_agreement).mean()) for s in shaped]
        assert np.isfinite(report[name]["pearson"]) and report[name] == pytest.approx(
            calibration_report(estimate, truth)
        )
    assert "quality_shape" not in evaluate_sqa(network, cases, size=32, class_names=["background", "inner", "ring"])

    dataset = Dataset(cases=cases, class_names=["background", "inner", "ring"], source_format="test")
    saved = tmp_path / "net.pt"
    torch.save(network.state_dict(), saved)
    bench = bench_quality(dataset, [saved], tmp_path / "q.json", model="sqa_test", size=32, shape="ellipse")
    assert bench["shape"] == "ellipse" and tuple(bench["summary"]) == quality_estimates("ellipse")
    with pytest.raises(InputError, match="circle"):
        bench_quality(dataset, [saved], tmp_path / "c.json", model="sqa_test", size=32, shape="circle")
    assert not (tmp_path / "c.json").exists()
