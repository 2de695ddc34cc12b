"""Error-map targets, quality scores without ground truth, and calibration measures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from frugalseg.data.case import IGNORE
from frugalseg.quality import (
    average_precision,
    calibration_report,
    class_balance_weights,
    class_balanced_bce,
    error_map_auroc_ap,
    error_target,
    image_quality_score,
    predicted_dice,
    predicted_error_fraction,
    quality_from_logits,
    rank_auroc,
)

# ---------------------------------------------------------------- error targets


def test_error_target_on_hand_made_example() -> None:
    # two classes on a 2x2 image; argmax = [[0, 1], [1, 0]]
    logits = torch.tensor([[[[3.0, -1.0], [0.0, 2.0]], [[1.0, 1.0], [4.0, -2.0]]]])
    target = torch.tensor([[[0, 0], [IGNORE, 1]]])
    errors, valid = error_target(logits, target)
    torch.testing.assert_close(errors, torch.tensor([[[0.0, 1.0], [0.0, 1.0]]]))
    torch.testing.assert_close(valid, torch.tensor([[[True, True], [False, True]]]))


def test_error_target_rejects_bad_labels_and_shapes() -> None:
    logits = torch.zeros(1, 2, 2, 2)
    with pytest.raises(ValueError, match="target values"):
        error_target(logits, torch.tensor([[[0, 2], [0, 0]]]))
    with pytest.raises(ValueError, match="expected logits"):
        error_target(logits, torch.zeros(1, 3, 2, dtype=torch.long))


def test_class_balance_weights_analytic() -> None:
    errors = torch.tensor([[[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]])
    valid = torch.tensor([[[True, True, True, True], [True, True, False, False]]])
    # N = 6 valid, P = 2 errors among them -> w_pos = 6 / 4, w_neg = 6 / 8
    assert class_balance_weights(errors, valid_mask=valid) == (1.5, 0.75)
    all_valid = torch.ones(1, 2, 2, dtype=torch.bool)
    assert class_balance_weights(torch.zeros(1, 2, 2), valid_mask=all_valid) == (1.0, 1.0)


def _bce(logit: float, label: float) -> float:
    prob = 1 / (1 + math.exp(-logit))
    return -(label * math.log(prob) + (1 - label) * math.log(1 - prob))


def test_class_balanced_bce_averages_class_means() -> None:
    logits = torch.tensor([[[[0.5, -1.0, 2.0], [1.5, -0.3, 4.0]]]])
    errors = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    valid = torch.tensor([[[True, True, True], [True, True, False]]])
    # valid positives: logit 0.5; valid negatives: -1.0, 2.0, 1.5, -0.3
    pos = _bce(0.5, 1.0)
    neg = [_bce(x, 0.0) for x in (-1.0, 2.0, 1.5, -0.3)]
    expected = 0.5 * pos + 0.5 * sum(neg) / 4
    assert class_balanced_bce(logits, errors, valid_mask=valid).item() == pytest.approx(expected, rel=1e-5)
    per_pixel = class_balanced_bce(logits, errors, valid_mask=valid, reduction="none")
    assert per_pixel.shape == (1, 2, 3) and per_pixel[0, 1, 2].item() == 0.0
    assert per_pixel[0, 0, 0].item() == pytest.approx(pos * 5 / 2, rel=1e-5)  # w_pos = 5 / (2 * 1)


def test_class_balanced_bce_one_class_is_plain_bce_and_empty_keeps_graph() -> None:
    logits = torch.tensor([[[0.2, -0.7]]], requires_grad=True)
    errors = torch.zeros(1, 1, 2)
    valid = torch.ones(1, 1, 2, dtype=torch.bool)
    expected = (_bce(0.2, 0.0) + _bce(-0.7, 0.0)) / 2
    assert class_balanced_bce(logits, errors, valid_mask=valid).item() == pytest.approx(expected, rel=1e-5)
    empty = class_balanced_bce(logits, errors, valid_mask=torch.zeros_like(valid))
    assert empty.item() == 0.0
    empty.backward()
    assert logits.grad is not None


# ---------------------------------------------------------------- quality scores


def _true_dice(pred: torch.Tensor, target: torch.Tensor, cls: int) -> float:
    p, t = pred == cls, target == cls
    denominator = int(p.sum() + t.sum())
    return 1.0 if denominator == 0 else 2.0 * int((p & t).sum()) / denominator


def test_predicted_dice_is_exact_with_the_true_binary_error_map() -> None:
    # binary: a wrong pixel predicted 0 is truly 1 and vice versa, so with e = 1[pred != target]
    # TP = #(pred=1, right), FP = #(pred=1, wrong), FN = #(pred=0, wrong): the exact confusion counts.
    gen = torch.Generator().manual_seed(0)
    target = (torch.rand(4, 12, 10, generator=gen) < 0.3).long()
    pred = torch.where(torch.rand(4, 12, 10, generator=gen) < 0.15, 1 - target, target)
    errors = (pred != target).float()
    estimated = predicted_dice(pred, errors, num_classes=2)
    assert estimated.shape == (4, 1)
    expected = torch.tensor([[_true_dice(pred[b], target[b], 1)] for b in range(4)])
    torch.testing.assert_close(estimated, expected)
    probs = torch.stack([1 - pred.float() * 0.8 - 0.1, pred.float() * 0.8 + 0.1], dim=1)
    with_probs = predicted_dice(pred, errors.unsqueeze(1), num_classes=2, probabilities=probs)
    torch.testing.assert_close(with_probs, expected)
    torch.testing.assert_close(image_quality_score(pred, errors, num_classes=2), expected[:, 0])


def test_predicted_dice_multiclass_exact_when_runner_up_is_the_truth() -> None:
    # three classes; wrong pixels put all non-argmax mass on the true class (q = 1 there)
    gen = torch.Generator().manual_seed(1)
    target = torch.randint(0, 3, (2, 9, 9), generator=gen)
    pred = torch.where(torch.rand(2, 9, 9, generator=gen) < 0.2, (target + 1) % 3, target)
    runner_up = torch.where(pred == target, (pred + 2) % 3, target)
    probs = 0.6 * torch.nn.functional.one_hot(pred, 3) + 0.4 * torch.nn.functional.one_hot(runner_up, 3)
    probs = probs.permute(0, 3, 1, 2).float()
    errors = (pred != target).float()
    estimated = predicted_dice(pred, errors, num_classes=3, probabilities=probs)
    expected = torch.tensor([[_true_dice(pred[b], target[b], c) for c in (1, 2)] for b in range(2)])
    torch.testing.assert_close(estimated, expected)
    # without probabilities the missed mass is split uniformly: FN_c is then only an estimate
    uniform = predicted_dice(pred, errors, num_classes=3)
    assert not torch.allclose(uniform, expected)


def test_predicted_dice_edge_rules() -> None:
    pred = torch.tensor([[[0, 1], [1, 1]]])
    # no predicted error: a perfect prediction of what is there; an absent class scores 1
    torch.testing.assert_close(predicted_dice(pred, torch.zeros(1, 2, 2), num_classes=3), torch.ones(1, 2))
    # every class-1 pixel surely wrong: TP = 0 -> Dice 0
    assert predicted_dice(pred, (pred == 1).float(), num_classes=2).item() == 0.0
    # all background, background pixel half-wrong: FN = 0.5 (binary), TP = FP = 0 -> Dice 0
    background = torch.zeros(1, 1, 2, dtype=torch.long)
    assert predicted_dice(background, torch.tensor([[[0.5, 0.0]]]), num_classes=2).item() == 0.0
    with pytest.raises(ValueError):
        predicted_dice(pred, torch.zeros(1, 2, 2), num_classes=1)
    with pytest.raises(ValueError):
        predicted_dice(pred + 2, torch.zeros(1, 2, 2), num_classes=3)


def test_predicted_error_fraction() -> None:
    error_prob = torch.tensor([[[0.2, 0.4], [0.6, 0.0]], [[1.0, 1.0], [1.0, 1.0]]])
    torch.testing.assert_close(predicted_error_fraction(error_prob), torch.tensor([0.3, 1.0]))
    mask = torch.tensor([[[True, True], [False, False]], [[False, False], [False, False]]])
    torch.testing.assert_close(
        predicted_error_fraction(error_prob.unsqueeze(1), foreground_mask=mask), torch.tensor([0.3, 0.0])
    )


def test_quality_from_logits_is_bounded_and_tracks_errors() -> None:
    logits = torch.zeros(2, 2, 4, 4)
    logits[:, 1, 1:3, 1:3] = 5.0
    error_logits = torch.full((2, 1, 4, 4), -20.0)
    error_logits[1] = 20.0  # second image: everything predicted wrong
    quality = quality_from_logits(logits, error_logits)
    assert quality.shape == (2,)
    assert quality[0].item() == pytest.approx(1.0, abs=1e-6) and quality[1].item() < 0.01


# ---------------------------------------------------------------- calibration


def test_calibration_report_on_known_relations() -> None:
    true = np.linspace(0.1, 0.9, 9)
    report = calibration_report(2 * true + 1, true)
    assert report["pearson"] == pytest.approx(1.0) and report["spearman"] == pytest.approx(1.0)
    assert report["mae"] == pytest.approx(float(np.mean(true + 1)))
    monotone = calibration_report(np.exp(5 * true), true)
    assert monotone["spearman"] == pytest.approx(1.0) and monotone["pearson"] < 0.99
    reversed_report = calibration_report(torch.tensor(true[::-1].copy()), true)
    assert reversed_report["pearson"] == pytest.approx(-1.0)
    assert reversed_report["spearman"] == pytest.approx(-1.0)
    assert math.isnan(calibration_report(np.ones(4), np.arange(4.0))["pearson"])
    with pytest.raises(ValueError):
        calibration_report([0.1, 0.2], [0.1])
    with pytest.raises(ValueError):
        calibration_report([0.1, float("nan")], [0.1, 0.2])


def test_auroc_perfect_reversed_random_and_tied() -> None:
    labels = np.array([0, 0, 0, 1, 1], dtype=bool)
    assert rank_auroc(np.array([0.1, 0.2, 0.3, 0.8, 0.9]), labels) == 1.0
    assert rank_auroc(np.array([0.9, 0.8, 0.7, 0.2, 0.1]), labels) == 0.0
    assert rank_auroc(np.full(5, 0.5), labels) == 0.5
    rng = np.random.default_rng(0)
    assert abs(rank_auroc(rng.random(20000), rng.random(20000) < 0.3) - 0.5) < 0.02
    assert math.isnan(rank_auroc(np.array([0.1, 0.2]), np.array([True, True])))


def test_auroc_equals_pairwise_count_with_ties() -> None:
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, 40).astype(float)  # many ties
    labels = rng.random(40) < 0.4
    pos, neg = scores[labels], scores[~labels]
    wins = (pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()
    pairwise = wins / (pos.size * neg.size)
    assert rank_auroc(scores, labels) == pytest.approx(pairwise)


def test_average_precision_analytic() -> None:
    # ranking 1, 0, 1, 0: precision 1 at recall 1/2, 2/3 at recall 1 -> AP = 1/2 + 1/3
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    assert average_precision(scores, np.array([1, 0, 1, 0])) == pytest.approx(5 / 6)
    assert average_precision(scores, np.array([1, 1, 0, 0])) == pytest.approx(1.0)
    # one block of ties: a single threshold with precision P / K
    assert average_precision(np.full(5, 0.3), np.array([1, 0, 1, 0, 0])) == pytest.approx(2 / 5)
    assert math.isnan(average_precision(scores, np.zeros(4)))


def test_error_map_auroc_ap_with_mask_and_channel_axis() -> None:
    errors = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    perfect = errors.unsqueeze(1) * 0.8 + 0.1
    assert error_map_auroc_ap(perfect, errors) == {"auroc": 1.0, "ap": 1.0}
    # masking out the one badly-scored pixel restores perfect separation
    scores = torch.tensor([[[0.9, 0.95], [0.1, 0.8]]])
    assert error_map_auroc_ap(scores, errors)["auroc"] < 1.0
    valid = torch.tensor([[[True, False], [True, True]]])
    assert error_map_auroc_ap(scores, errors, valid)["auroc"] == 1.0
    with pytest.raises(ValueError):
        error_map_auroc_ap(scores[..., :1], errors)


def test_quality_from_logits_prior_correction() -> None:
    # all pixels predicted class 1, error logit 0: e = 1/2, or pi after the prior shift log(pi / (1 - pi)).
    # TP = (1 - e) n, FP = e n, FN = 0 -> Dice = 2 (1 - e) / (2 (1 - e) + e)
    logits = torch.zeros(1, 2, 3, 3)
    logits[:, 1] = 4.0
    error_logits = torch.zeros(1, 1, 3, 3)
    assert quality_from_logits(logits, error_logits).item() == pytest.approx(2 / 3, rel=1e-5)
    corrected = quality_from_logits(logits, error_logits, error_prevalence=0.25)
    assert corrected.item() == pytest.approx(1.5 / 1.75, rel=1e-5)
    with pytest.raises(ValueError):
        quality_from_logits(logits, error_logits, error_prevalence=1.0)
