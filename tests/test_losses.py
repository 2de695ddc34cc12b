"""Contract tests of frugalseg.losses: gradients, perfect predictions, complete labels, reductions."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from frugalseg.data.case import IGNORE, Box
from frugalseg.losses import (
    BoxTightnessLoss,
    CRFLoss,
    DiceCELoss,
    DiceLoss,
    EntropyLoss,
    ExclusionLoss,
    MarginalCrossEntropy,
    MarginalExclusionLoss,
    PartialCrossEntropy,
    PointLoss,
    SizeConstraintLoss,
    TotalVariationLoss,
    box_mask,
    box_tightness_loss,
    crf_loss,
    dice_ce_loss,
    dice_loss,
    entropy_loss,
    exclusion_loss,
    log_barrier_extension,
    log_smooth_max,
    marginal_cross_entropy,
    marginal_exclusion_loss,
    partial_cross_entropy,
    point_loss,
    quadratic_penalty,
    size_bounds_from_boxes,
    size_constraint_loss,
    total_variation_loss,
)

B, C, H, W = 2, 3, 6, 7
BIG = 30.0  # logit margin that makes softmax one-hot to float64 precision


def rand_logits(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


def rand_target(b: int = B, h: int = H, w: int = W, *, num_classes: int = C, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, num_classes, (b, h, w), generator=g)


def hard_logits(target: torch.Tensor, num_classes: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Logits whose softmax is the one-hot of ``target`` (to ~exp(-BIG))."""
    return BIG * F.one_hot(target.long(), num_classes).permute(0, 3, 1, 2).to(dtype)


def gradcheck(fn: Callable[[torch.Tensor], torch.Tensor], inputs: tuple[torch.Tensor, ...]) -> bool:
    """``torch.autograd.gradcheck`` in fast mode (one random projection): cheap enough for every loss."""
    return torch.autograd.gradcheck(fn, inputs, fast_mode=True)


def assert_grad_ok(loss: torch.Tensor, logits: torch.Tensor) -> None:
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.isfinite(grad).all()
    assert grad.abs().sum() > 0


def rect_target(h: int, w: int, box: tuple[int, int, int, int], label: int = 1) -> torch.Tensor:
    x0, y0, x1, y1 = box
    target = torch.zeros(1, h, w, dtype=torch.long)
    target[0, y0:y1, x0:x1] = label
    return target


# ---------------------------------------------------------------- partial cross-entropy


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_partial_ce_equals_ce_when_fully_labelled(reduction: str) -> None:
    logits, target = rand_logits(B, C, H, W), rand_target()
    expected = F.cross_entropy(logits, target, reduction=reduction)
    torch.testing.assert_close(partial_cross_entropy(logits, target, reduction=reduction), expected)


def test_partial_ce_excludes_ignore_and_invalid_pixels() -> None:
    logits, target = rand_logits(B, C, H, W), rand_target()
    target[0, :2] = IGNORE
    valid = torch.ones(B, H, W, dtype=torch.bool)
    valid[1, :, :3] = False
    expected_target = target.clone()
    expected_target[~valid] = IGNORE
    expected = F.cross_entropy(logits, expected_target, ignore_index=IGNORE)
    torch.testing.assert_close(partial_cross_entropy(logits, target, valid_mask=valid), expected)
    # nothing labelled: zero loss, zero (finite) gradient
    logits.requires_grad_(True)
    empty = partial_cross_entropy(logits, torch.full_like(target, IGNORE))
    (grad,) = torch.autograd.grad(empty, logits)
    assert empty.item() == 0.0 and torch.equal(grad, torch.zeros_like(grad))


def test_partial_ce_sum_is_sum_of_items_and_gradcheck() -> None:
    logits, target = rand_logits(B, C, H, W), rand_target()
    target[:, 0] = IGNORE
    items = sum(partial_cross_entropy(logits[i : i + 1], target[i : i + 1], reduction="sum") for i in range(B))
    torch.testing.assert_close(partial_cross_entropy(logits, target, reduction="sum"), items)
    small = rand_logits(1, 3, 3, 3, dtype=torch.float64).requires_grad_(True)
    small_target = rand_target(1, 3, 3)
    small_target[0, 0, 0] = IGNORE
    assert gradcheck(lambda x: partial_cross_entropy(x, small_target), (small,))


def test_partial_ce_validation() -> None:
    logits, target = rand_logits(B, C, H, W), rand_target()
    with pytest.raises(ValueError, match="label 5"):
        partial_cross_entropy(logits, torch.full_like(target, 5))
    with pytest.raises(ValueError, match=r"target shape \(2, 7\)"):
        partial_cross_entropy(logits, target[:, 0])
    with pytest.raises(ValueError, match=r"logits shape \(2, 3, 6\)"):
        partial_cross_entropy(logits[..., 0], target)
    with pytest.raises(ValueError, match="valid_mask dtype"):
        partial_cross_entropy(logits, target, valid_mask=torch.ones(B, H, W))
    with pytest.raises(ValueError, match="target dtype"):
        partial_cross_entropy(logits, target.float())
    with pytest.raises(ValueError, match="reduction='avg'"):
        PartialCrossEntropy(reduction="avg")  # type: ignore[arg-type]
    # an out-of-range label where valid_mask is False is fine
    bad = target.clone()
    bad[0, 0, 0] = 7
    valid = torch.ones(B, H, W, dtype=torch.bool)
    valid[0, 0, 0] = False
    assert torch.isfinite(PartialCrossEntropy()(logits, bad, valid))


# ---------------------------------------------------------------- Dice and Dice + CE


def test_dice_perfect_wrong_and_uniform() -> None:
    target = rand_target()
    assert dice_loss(hard_logits(target, C), target).item() < 1e-6
    assert dice_loss(hard_logits((target + 1) % C, C), target).item() > 0.999
    # uniform 2-class prediction on an all-foreground target: I = N/2, P = N/2, G = N -> loss = 1/3
    n = B * H * W
    ones = torch.ones(B, H, W, dtype=torch.long)
    expected = 1 - (n + 1e-5) / (1.5 * n + 1e-5)
    assert dice_loss(torch.zeros(B, 2, H, W), ones).item() == pytest.approx(expected, rel=1e-6)


def test_dice_reductions_background_and_ignore() -> None:
    logits, target = rand_logits(B, C, H, W), rand_target()
    per_class = dice_loss(logits, target, reduction="none")
    assert per_class.shape == (C - 1,)
    assert dice_loss(logits, target, include_background=True, reduction="none").shape == (C,)
    torch.testing.assert_close(dice_loss(logits, target), per_class.mean())
    torch.testing.assert_close(dice_loss(logits, target, reduction="sum"), per_class.sum())
    # ignored pixels do not matter
    target[:, :2] = IGNORE
    changed = logits.clone()
    changed[:, :, :2] = rand_logits(B, C, 2, W, seed=9)
    torch.testing.assert_close(dice_loss(logits, target), dice_loss(changed, target))
    with pytest.raises(ValueError, match="smooth=0"):
        dice_loss(logits, target, smooth=0)


def test_dice_ce_is_ce_plus_dice_on_full_labels_and_gradients() -> None:
    logits, target = rand_logits(B, C, H, W).requires_grad_(True), rand_target()
    combined = dice_ce_loss(logits, target, dice_weight=0.5, ce_weight=2.0)
    expected = 2.0 * F.cross_entropy(logits, target) + 0.5 * dice_loss(logits, target)
    torch.testing.assert_close(combined, expected)
    torch.testing.assert_close(DiceCELoss(dice_weight=0.5, ce_weight=2.0)(logits, target), expected)
    torch.testing.assert_close(DiceLoss()(logits, target), dice_loss(logits, target))
    assert_grad_ok(combined, logits)
    assert dice_ce_loss(hard_logits(target, C), target).item() < 1e-6
    small = rand_logits(1, 3, 3, 3, dtype=torch.float64).requires_grad_(True)
    small_target = rand_target(1, 3, 3)
    assert gradcheck(lambda x: dice_ce_loss(x, small_target), (small,))


# ---------------------------------------------------------------- boxes


def test_box_mask_and_size_bounds() -> None:
    boxes = [
        [Box(xmin=1, ymin=2, xmax=4, ymax=5, label=1), Box(xmin=0.5, ymin=0, xmax=1.2, ymax=1, label=2)],
        [],
    ]
    mask = box_mask(boxes, num_classes=3, height=H, width=W)
    assert mask.shape == (2, 3, H, W) and mask.dtype == torch.bool
    assert mask[0, 1].sum() == 9 and bool(mask[0, 1, 2:5, 1:4].all())
    assert mask[0, 2].sum() == 2  # columns 0..1 after widening, row 0
    assert not mask[0, 0].any() and not mask[1].any()
    lower, upper, valid = size_bounds_from_boxes(
        boxes, num_classes=3, height=H, width=W, lower_fraction=0.5, upper_fraction=1.0
    )
    torch.testing.assert_close(upper, torch.tensor([[0.0, 9.0, 2.0], [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(lower, upper * 0.5)
    assert valid.tolist() == [[False, True, True], [False, True, True]]
    with pytest.raises(ValueError, match="label 0"):
        box_mask([[Box(xmin=0, ymin=0, xmax=2, ymax=2, label=0)]], num_classes=3, height=H, width=W)
    with pytest.raises(ValueError, match="xmin < xmax"):
        box_mask([[Box(xmin=3, ymin=0, xmax=2, ymax=2, label=1)]], num_classes=3, height=H, width=W)


def test_smooth_maxima_bracket_and_approach_the_max() -> None:
    x = torch.tensor([[0.1, 0.7, 0.3, 0.2]], dtype=torch.float64)
    for alpha in (1.0, 4.0, 200.0):
        soft = log_smooth_max(x, x.log(), dim=1, smooth_max="softmax", alpha=alpha).exp()
        quasi = log_smooth_max(x, x.log(), dim=1, smooth_max="quasimax", alpha=alpha).exp()
        assert soft.item() <= 0.7 + 1e-12 and quasi.item() <= 0.7 + 1e-12
        expected_soft = (x * torch.softmax(alpha * x, dim=1)).sum()
        expected_quasi = (torch.logsumexp(alpha * x, dim=1) - math.log(4)) / alpha
        torch.testing.assert_close(soft, expected_soft.view(1))
        torch.testing.assert_close(quasi, expected_quasi.view(1))
    assert soft.item() == pytest.approx(0.7, abs=1e-6) and quasi.item() == pytest.approx(0.7, abs=1e-2)
    lse = log_smooth_max(x, x.log(), dim=1, smooth_max="logsumexp", alpha=200.0).exp()
    assert 0.7 <= lse.item() <= 0.7 + math.log(4) / 200 + 1e-12


@pytest.mark.parametrize("smooth_max", ["softmax", "quasimax", "logsumexp"])
def test_box_tightness_minimised_by_the_rectangle_object(smooth_max: str) -> None:
    box = (2, 1, 6, 4)
    boxes = [[Box(xmin=2, ymin=1, xmax=6, ymax=4, label=1)]]
    perfect = hard_logits(rect_target(H, W, box), 2)
    loss_perfect = box_tightness_loss(perfect, boxes, smooth_max=smooth_max)
    assert loss_perfect.item() < 1e-6
    shifted = hard_logits(rect_target(H, W, (0, 2, 4, 5)), 2)
    empty = hard_logits(torch.zeros(1, H, W, dtype=torch.long), 2)
    half = hard_logits(rect_target(H, W, (2, 1, 6, 2)), 2)  # only the top row of the box
    left = hard_logits(rect_target(H, W, (2, 1, 3, 4)), 2)  # only the left column: rows met, columns not
    for wrong in (shifted, empty, half, left):
        assert box_tightness_loss(wrong, boxes, smooth_max=smooth_max).item() > loss_perfect.item() + 0.1


def test_box_tightness_analytic_uniform_prediction() -> None:
    # p = 1/2 everywhere: every smooth max of equal values is 1/2 -> -log(1/2) per bag, and -log(1/2) outside
    boxes = [[Box(xmin=1, ymin=1, xmax=4, ymax=3, label=1)], []]
    for smooth_max in ("softmax", "quasimax"):
        loss = box_tightness_loss(torch.zeros(2, 2, H, W), boxes, smooth_max=smooth_max, reduction="none")
        torch.testing.assert_close(loss, torch.tensor([2 * math.log(2), math.log(2)]))
    # a box outside the image has no bags
    outside = [[*boxes[0], Box(xmin=W + 1, ymin=0, xmax=W + 3, ymax=2, label=1)], []]
    torch.testing.assert_close(
        box_tightness_loss(torch.zeros(2, 2, H, W), outside),
        box_tightness_loss(torch.zeros(2, 2, H, W), boxes),
    )
    # image without boxes and nothing known about it contributes nothing
    unknown = torch.zeros(2, H, W, dtype=torch.bool)
    unknown[0] = True
    loss = box_tightness_loss(torch.zeros(2, 2, H, W), boxes, valid_mask=unknown, reduction="none")
    torch.testing.assert_close(loss, torch.tensor([2 * math.log(2), 0.0]))


def test_box_tightness_batch_gradients_and_validation() -> None:
    logits = rand_logits(B, C, H, W).requires_grad_(True)
    boxes = [
        [Box(xmin=0, ymin=0, xmax=3, ymax=4, label=1), Box(xmin=2, ymin=2, xmax=7, ymax=6, label=2)],
        [Box(xmin=1, ymin=1, xmax=5, ymax=3, label=2)],
    ]
    total = box_tightness_loss(logits, boxes, reduction="sum")
    items = sum(box_tightness_loss(logits[i : i + 1], boxes[i : i + 1], reduction="sum") for i in range(B))
    torch.testing.assert_close(total, items)
    torch.testing.assert_close(box_tightness_loss(logits, boxes), total / B)
    module = BoxTightnessLoss(smooth_max="quasimax", alpha=6.0, reduction="none")
    torch.testing.assert_close(
        module(logits, boxes),
        box_tightness_loss(logits, boxes, smooth_max="quasimax", alpha=6.0, reduction="none"),
    )
    assert_grad_ok(total, logits)
    small_boxes = [[Box(xmin=1, ymin=0, xmax=3, ymax=2, label=1)]]
    for smooth_max in ("softmax", "quasimax", "logsumexp"):
        small = rand_logits(1, 2, 3, 4, dtype=torch.float64, seed=3).requires_grad_(True)
        assert gradcheck(lambda x, s=smooth_max: box_tightness_loss(x, small_boxes, smooth_max=s, alpha=2.0), (small,))
    with pytest.raises(ValueError, match="one list of boxes per image"):
        box_tightness_loss(logits, boxes[:1])
    with pytest.raises(ValueError, match="label 3"):
        box_tightness_loss(logits, [[Box(xmin=0, ymin=0, xmax=2, ymax=2, label=3)], []])
    with pytest.raises(ValueError, match="smooth_max='max'"):
        box_tightness_loss(logits, boxes, smooth_max="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha=0"):
        box_tightness_loss(logits, boxes, alpha=0)
    with pytest.raises(ValueError, match=r"valid_mask shape \(2, 6\)"):
        box_tightness_loss(logits, boxes, valid_mask=torch.ones(B, H, dtype=torch.bool))


# ---------------------------------------------------------------- size constraints


def test_log_barrier_extension_values_and_continuity() -> None:
    t = 5.0
    z = torch.tensor([-0.5, -0.9, 0.2], dtype=torch.float64)
    expected = torch.tensor(
        [-math.log(0.5) / t, -math.log(0.9) / t, t * 0.2 - math.log(1 / t**2) / t + 1 / t],
        dtype=torch.float64,
    )
    torch.testing.assert_close(log_barrier_extension(z, t=t), expected)
    edge = -1 / t**2
    around = torch.tensor([edge - 1e-9, edge + 1e-9], dtype=torch.float64, requires_grad=True)
    values = log_barrier_extension(around, t=t)
    (grad,) = torch.autograd.grad(values.sum(), around)
    assert abs(values[0] - values[1]).item() < 1e-7
    torch.testing.assert_close(grad, torch.tensor([t, t], dtype=torch.float64), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(quadratic_penalty(z), torch.tensor([0.0, 0.0, 0.04], dtype=torch.float64))
    with pytest.raises(ValueError, match="t=0"):
        log_barrier_extension(z, t=0)


def test_size_constraint_analytic_and_zero_when_feasible() -> None:
    logits = torch.zeros(1, 2, 4, 5)  # p = 1/2: size 10 of 20 pixels per class
    upper = torch.tensor([[20.0, 0.0]])
    lower = torch.tensor([[0.0, 0.0]])
    quad = size_constraint_loss(logits, lower, upper, penalty="quadratic")
    assert quad.item() == pytest.approx(0.25)  # class 1: z_upper = 10 / 20
    feasible = size_constraint_loss(logits, None, torch.tensor([[20.0, 12.0]]), penalty="quadratic")
    assert feasible.item() == 0.0
    z = torch.tensor([-0.5, -0.5, -0.5, 0.5])  # (lower - s, s - upper) / area for classes 0 and 1
    expected = log_barrier_extension(z, t=3.0).sum()
    torch.testing.assert_close(size_constraint_loss(logits, lower, upper, t=3.0), expected)
    # only class 1 constrained
    valid = torch.tensor([[False, True]])
    masked = size_constraint_loss(logits, lower, upper, valid_mask=valid, penalty="quadratic")
    assert masked.item() == pytest.approx(0.25)


def test_size_constraint_prefers_feasible_predictions() -> None:
    target = rect_target(H, W, (1, 1, 4, 4))  # 9 pixels of class 1
    lower, upper = torch.tensor([[0.0, 8.0]]), torch.tensor([[42.0, 10.0]])
    valid = torch.tensor([[False, True]])
    good = hard_logits(target, 2)
    bad = hard_logits(torch.zeros_like(target), 2)
    for penalty in ("log_barrier", "quadratic"):
        kw = {"valid_mask": valid, "penalty": penalty}
        loss_good = size_constraint_loss(good, lower, upper, **kw)  # type: ignore[arg-type]
        loss_bad = size_constraint_loss(bad, lower, upper, **kw)  # type: ignore[arg-type]
        assert loss_good.item() < loss_bad.item()
    assert size_constraint_loss(good, lower, upper, valid_mask=valid, penalty="quadratic").item() < 1e-12


def test_size_constraint_batch_gradients_and_validation() -> None:
    logits = rand_logits(B, C, H, W).requires_grad_(True)
    lower = torch.tensor([[0.0, 5.0, 2.0], [1.0, 0.0, 30.0]])
    upper = torch.tensor([[40.0, 10.0, 3.0], [42.0, 2.0, 40.0]])
    for penalty in ("log_barrier", "quadratic"):
        total = size_constraint_loss(logits, lower, upper, penalty=penalty, reduction="sum")  # type: ignore[arg-type]
        items = sum(
            size_constraint_loss(
                logits[i : i + 1], lower[i : i + 1], upper[i : i + 1], penalty=penalty, reduction="sum"
            )  # type: ignore[arg-type]
            for i in range(B)
        )
        torch.testing.assert_close(total, items)
        assert_grad_ok(total, logits)
    module = SizeConstraintLoss(penalty="quadratic", reduction="none")
    assert module(logits, lower, upper).shape == (B,)
    small = rand_logits(1, 2, 3, 3, dtype=torch.float64).requires_grad_(True)
    lo, up = torch.tensor([[0.0, 6.0]], dtype=torch.float64), torch.tensor([[9.0, 8.0]], dtype=torch.float64)
    assert gradcheck(lambda x: size_constraint_loss(x, lo, up), (small,))
    assert gradcheck(lambda x: size_constraint_loss(x, lo, up, penalty="quadratic"), (small,))
    with pytest.raises(ValueError, match="at least one size bound"):
        size_constraint_loss(logits, None, None)
    with pytest.raises(ValueError, match="lower > upper"):
        size_constraint_loss(logits, upper, lower)
    with pytest.raises(ValueError, match=r"upper shape \(2,\)"):
        size_constraint_loss(logits, None, upper[:, 0])
    with pytest.raises(ValueError, match="penalty='l2'"):
        size_constraint_loss(logits, None, upper, penalty="l2")  # type: ignore[arg-type]


# ---------------------------------------------------------------- points


def test_point_loss_equals_ce_with_every_pixel_a_point() -> None:
    logits, target = rand_logits(B, C, H, W), rand_target()
    torch.testing.assert_close(point_loss(logits, target), F.cross_entropy(logits, target))
    per_image = F.cross_entropy(logits, target, reduction="none").mean(dim=(1, 2))
    torch.testing.assert_close(point_loss(logits, target, reduction="none"), per_image)


def test_point_loss_at_points_negative_weight_and_size_term() -> None:
    logits = rand_logits(1, 2, H, W)
    target = torch.full((1, H, W), IGNORE, dtype=torch.long)
    valid = torch.zeros(1, H, W, dtype=torch.bool)
    target[0, 2, 3], valid[0, 2, 3] = 1, True  # positive point
    target[0, 0, 0], valid[0, 0, 0] = 0, True  # negative point
    log_p = torch.log_softmax(logits, dim=1)
    ce_pos, ce_neg = -log_p[0, 1, 2, 3], -log_p[0, 0, 0, 0]
    torch.testing.assert_close(point_loss(logits, target, valid_mask=valid), (ce_pos + ce_neg) / 2)
    torch.testing.assert_close(
        point_loss(logits, target, valid_mask=valid, negative_weight=0.5), (ce_pos + 0.5 * ce_neg) / 2
    )
    lower, upper = torch.tensor([[0.0, 30.0]]), torch.tensor([[42.0, 40.0]])
    size_valid = torch.tensor([[False, True]])
    with_size = point_loss(
        logits,
        target,
        valid_mask=valid,
        size_lower=lower,
        size_upper=upper,
        size_valid_mask=size_valid,
        size_weight=2.0,
    )
    size = torch.softmax(logits, dim=1)[0, 1].sum()
    expected_penalty = torch.relu((30.0 - size) / (H * W)) ** 2
    torch.testing.assert_close(with_size, (ce_pos + ce_neg) / 2 + 2.0 * expected_penalty)
    # a perfect prediction meeting the size prior scores ~0
    perfect_target = rect_target(H, W, (0, 0, 7, 5))  # 35 pixels of class 1
    perfect = hard_logits(perfect_target, 2)
    points = torch.zeros(1, H, W, dtype=torch.bool)
    points[0, 1, 1] = points[0, 5, 5] = True
    perfect_loss = point_loss(
        perfect,
        perfect_target,
        valid_mask=points,
        size_lower=lower.double(),
        size_upper=upper.double(),
        size_valid_mask=size_valid,
    )
    assert perfect_loss.item() < 1e-9


def test_point_loss_batch_gradients_and_validation() -> None:
    logits = rand_logits(B, C, H, W).requires_grad_(True)
    target = rand_target()
    valid = torch.rand(B, H, W, generator=torch.Generator().manual_seed(4)) < 0.2
    lower, upper = torch.zeros(B, C), torch.full((B, C), 10.0)
    kwargs = {"size_lower": lower, "size_upper": upper}
    total = point_loss(logits, target, valid_mask=valid, reduction="sum", **kwargs)
    items = sum(
        point_loss(
            logits[i : i + 1],
            target[i : i + 1],
            valid_mask=valid[i : i + 1],
            size_lower=lower[i : i + 1],
            size_upper=upper[i : i + 1],
            reduction="sum",
        )
        for i in range(B)
    )
    torch.testing.assert_close(total, items)
    assert_grad_ok(total, logits)
    module = PointLoss(negative_weight=0.3, reduction="none")
    torch.testing.assert_close(
        module(logits, target, valid),
        point_loss(logits, target, valid_mask=valid, negative_weight=0.3, reduction="none"),
    )
    small = rand_logits(1, 2, 3, 3, dtype=torch.float64).requires_grad_(True)
    small_target, small_valid = (
        rand_target(1, 3, 3, num_classes=2),
        torch.eye(3, dtype=torch.bool).unsqueeze(0),
    )
    lo, up = torch.tensor([[0.0, 5.0]], dtype=torch.float64), torch.tensor([[9.0, 6.0]], dtype=torch.float64)
    assert gradcheck(
        lambda x: point_loss(x, small_target, valid_mask=small_valid, size_lower=lo, size_upper=up), (small,)
    )
    with pytest.raises(ValueError, match="negative_weight=-1"):
        point_loss(logits, target, negative_weight=-1)
    with pytest.raises(ValueError, match=r"lower shape \(3,\)"):
        point_loss(logits, target, size_lower=torch.zeros(C))


# ---------------------------------------------------------------- CRF, TV, entropy


def test_crf_loss_analytic_two_pixels() -> None:
    logits = torch.tensor([[[[0.3, -1.2]], [[0.1, 0.4]]]], dtype=torch.float64)  # (1, 2, 1, 2)
    image = torch.tensor([[[[0.2, 0.5]]]], dtype=torch.float64)
    sigma_xy, sigma_rgb = 2.0, 0.4
    p = torch.softmax(logits, dim=1)[0, :, 0]  # (C, 2)
    w = math.exp(-1 / (2 * sigma_xy**2) - 0.3**2 / (2 * sigma_rgb**2))
    d01 = (p[:, 0] * (1 - p[:, 1])).sum()
    d10 = (p[:, 1] * (1 - p[:, 0])).sum()
    loss = crf_loss(logits, image, kernel_size=3, sigma_xy=sigma_xy, sigma_rgb=sigma_rgb, downsample=1)
    torch.testing.assert_close(loss, w * (d01 + d10) / 2)


def test_crf_loss_zero_when_constant_and_smaller_on_image_edges() -> None:
    image = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    image[..., 4:] = 1.0
    constant = hard_logits(torch.zeros(1, 8, 8, dtype=torch.long), 2)
    assert crf_loss(constant, image, downsample=1).item() < 1e-9
    along_edge = hard_logits(rect_target(8, 8, (4, 0, 8, 8)), 2)
    across_flat = hard_logits(rect_target(8, 8, (0, 4, 8, 8)), 2)
    for downsample in (1, 2):
        assert crf_loss(along_edge, image, downsample=downsample) < crf_loss(across_flat, image, downsample=downsample)


def test_crf_loss_gating_batch_gradients_and_validation() -> None:
    logits = rand_logits(B, C, 8, 8).requires_grad_(True)
    image = rand_logits(B, 3, 8, 8, seed=5).sigmoid()
    valid = torch.ones(B, 8, 8, dtype=torch.bool)
    valid[:, :, 6:] = False
    changed = logits.detach().clone()
    changed[..., 6:] = rand_logits(B, C, 8, 2, seed=6)
    torch.testing.assert_close(
        crf_loss(logits, image, valid_mask=valid, downsample=1),
        crf_loss(changed, image, valid_mask=valid, downsample=1),
    )
    for downsample in (1, 2):
        total = crf_loss(logits, image, valid_mask=valid, downsample=downsample, reduction="sum")
        items = sum(
            crf_loss(
                logits[i : i + 1],
                image[i : i + 1],
                valid_mask=valid[i : i + 1],
                downsample=downsample,
                reduction="sum",
            )
            for i in range(B)
        )
        torch.testing.assert_close(total, items)
        assert_grad_ok(total, logits)
    torch.testing.assert_close(CRFLoss(kernel_size=3)(logits, image), crf_loss(logits, image, kernel_size=3))
    small = rand_logits(1, 2, 4, 4, dtype=torch.float64).requires_grad_(True)
    small_image = rand_logits(1, 1, 4, 4, dtype=torch.float64, seed=7)
    for downsample in (1, 2):
        assert gradcheck(
            lambda x, d=downsample: crf_loss(x, small_image, kernel_size=3, sigma_rgb=1.0, downsample=d),
            (small,),
        )
    with pytest.raises(ValueError, match="kernel_size=4"):
        crf_loss(logits, image, kernel_size=4)
    with pytest.raises(ValueError, match="downsample=0"):
        crf_loss(logits, image, downsample=0)
    with pytest.raises(ValueError, match=r"image shape \(2, 3, 8, 7\)"):
        crf_loss(logits, image[..., :7])
    with pytest.raises(ValueError, match="sigma_rgb=0"):
        crf_loss(logits, image, sigma_rgb=0)


def test_total_variation_analytic_batch_and_gradients() -> None:
    target = rect_target(H, W, (3, 0, 7, 6))  # vertical edge of length H between columns 2 and 3
    hard = hard_logits(target, 2)
    assert total_variation_loss(hard).item() == pytest.approx(2 * H / (H * W))
    assert total_variation_loss(hard_logits(torch.zeros_like(target), 2)).item() < 1e-12
    valid = torch.ones(1, H, W, dtype=torch.bool)
    valid[..., 3:] = False  # the edge now has no valid pair
    assert total_variation_loss(hard, valid_mask=valid).item() < 1e-12
    logits = rand_logits(B, C, H, W).requires_grad_(True)
    total = total_variation_loss(logits, reduction="sum")
    torch.testing.assert_close(total, sum(total_variation_loss(logits[i : i + 1], reduction="sum") for i in range(B)))
    assert total_variation_loss(logits, reduction="none").shape == (B,)
    torch.testing.assert_close(TotalVariationLoss()(logits), total / B)
    assert_grad_ok(total, logits)
    small = rand_logits(1, 2, 3, 3, dtype=torch.float64).requires_grad_(True)
    assert gradcheck(lambda x: total_variation_loss(x), (small,))
    with pytest.raises(ValueError, match="reduction='max'"):
        total_variation_loss(logits, reduction="max")  # type: ignore[arg-type]


def test_entropy_analytic_batch_and_gradients() -> None:
    assert entropy_loss(torch.zeros(B, C, H, W)).item() == pytest.approx(math.log(C))
    assert entropy_loss(torch.zeros(B, C, H, W), normalize=True).item() == pytest.approx(1.0)
    assert entropy_loss(hard_logits(rand_target(), C)).item() < 1e-9
    logits = rand_logits(B, C, H, W).requires_grad_(True)
    valid = torch.ones(B, H, W, dtype=torch.bool)
    valid[0] = False
    p = torch.softmax(logits, dim=1)
    expected = -(p * p.log()).sum(dim=1)[1].mean()
    torch.testing.assert_close(entropy_loss(logits, valid_mask=valid), expected)
    assert entropy_loss(logits, reduction="none").shape == (B, H, W)
    total = entropy_loss(logits, reduction="sum")
    torch.testing.assert_close(total, sum(entropy_loss(logits[i : i + 1], reduction="sum") for i in range(B)))
    torch.testing.assert_close(EntropyLoss(normalize=True)(logits), entropy_loss(logits) / math.log(C))
    assert_grad_ok(total, logits)
    small = rand_logits(1, 3, 2, 2, dtype=torch.float64).requires_grad_(True)
    assert gradcheck(lambda x: entropy_loss(x), (small,))


# ---------------------------------------------------------------- partially labelled datasets


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_marginal_ce_equals_ce_when_all_classes_annotated(reduction: str) -> None:
    logits, target = rand_logits(B, C, H, W), rand_target()
    annotated = torch.ones(B, C, dtype=torch.bool)
    expected = F.cross_entropy(logits, target, reduction=reduction)
    torch.testing.assert_close(marginal_cross_entropy(logits, target, annotated, reduction=reduction), expected)
    annotated[:, 0] = False  # background column is ignored
    torch.testing.assert_close(marginal_cross_entropy(logits, target, annotated, reduction=reduction), expected)


def test_marginal_ce_merges_unannotated_classes_into_background() -> None:
    logits = rand_logits(B, 4, H, W)
    target = rand_target(num_classes=4)
    annotated = torch.tensor([[True, True, False, True], [True, False, True, False]])
    target[0][target[0] == 2] = 0
    target[1][(target[1] == 1) | (target[1] == 3)] = 0
    p = torch.softmax(logits, dim=1)
    merged = torch.stack([p[0, 0] + p[0, 2], p[1, 0] + p[1, 1] + p[1, 3]])
    picked = torch.gather(p, 1, target.unsqueeze(1)).squeeze(1)
    expected = -torch.where(target == 0, merged, picked).log()
    torch.testing.assert_close(marginal_cross_entropy(logits, target, annotated, reduction="none"), expected)
    module = MarginalCrossEntropy(reduction="sum")
    items = sum(module(logits[i : i + 1], target[i : i + 1], annotated[i : i + 1]) for i in range(B))
    torch.testing.assert_close(module(logits, target, annotated), items)
    with pytest.raises(ValueError, match=r"annotated\[1, 3\] is False"):
        bad = target.clone()
        bad[1, 0, 0] = 3
        marginal_cross_entropy(logits, bad, annotated)
    with pytest.raises(ValueError, match=r"annotated shape \(2, 3\)"):
        marginal_cross_entropy(logits, target, annotated[:, :3])
    with pytest.raises(ValueError, match="annotated dtype"):
        marginal_cross_entropy(logits, target, annotated.long())


@pytest.mark.parametrize("mode", ["dice", "ce"])
def test_exclusion_loss_perfect_wrong_and_gradients(mode: str) -> None:
    target = torch.zeros(1, H, W, dtype=torch.long)
    target[0, :3, :3] = 1
    target[0, 3:, 4:] = 2
    annotated = torch.ones(1, C, dtype=torch.bool)
    perfect = hard_logits(target, C)
    assert exclusion_loss(perfect, target, annotated, mode=mode).item() < 1e-9
    swapped = target.clone()
    swapped[target == 1], swapped[target == 2] = 2, 1
    assert exclusion_loss(hard_logits(swapped, C), target, annotated, mode=mode).item() > 0.5
    logits = rand_logits(B, C, H, W).requires_grad_(True)
    full = rand_target()
    total = exclusion_loss(logits, full, torch.ones(B, C, dtype=torch.bool), mode=mode, reduction="sum")
    items = sum(
        exclusion_loss(
            logits[i : i + 1], full[i : i + 1], torch.ones(1, C, dtype=torch.bool), mode=mode, reduction="sum"
        )
        for i in range(B)
    )
    torch.testing.assert_close(total, items)
    assert_grad_ok(total, logits)
    small = rand_logits(1, 3, 3, 3, dtype=torch.float64).requires_grad_(True)
    small_target = torch.tensor([[[0, 1, 1], [2, 2, 0], [1, 0, 2]]])
    ones = torch.ones(1, 3, dtype=torch.bool)
    assert gradcheck(lambda x: exclusion_loss(x, small_target, ones, mode=mode), (small,))
    assert gradcheck(lambda x: marginal_exclusion_loss(x, small_target, ones, mode=mode), (small,))


def test_exclusion_dice_analytic_and_combined_loss() -> None:
    # uniform p = 1/3 over 3 classes; class-1 region 4 pixels, class-2 region 2 pixels, 12 pixels in all
    target = torch.zeros(1, 3, 4, dtype=torch.long)
    target[0, 0] = 1
    target[0, 1, :2] = 2
    logits = torch.zeros(1, 3, 3, 4)
    annotated = torch.ones(1, 3, dtype=torch.bool)
    dice_1 = 2 * (2 / 3) / (2 + 4)  # e_1 = class-2 pixels
    dice_2 = 2 * (4 / 3) / (4 + 4)  # e_2 = class-1 pixels
    expected = (dice_1 + dice_2) / 2
    loss = exclusion_loss(logits, target, annotated, smooth=1e-9)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    combined = MarginalExclusionLoss(exclusion_weight=0.5, smooth=1e-9)(logits, target, annotated)
    torch.testing.assert_close(combined, math.log(3) + 0.5 * loss)
    torch.testing.assert_close(ExclusionLoss(mode="ce")(logits, target, annotated), torch.tensor(-math.log(2 / 3)))
    with pytest.raises(ValueError, match="mode='l1'"):
        exclusion_loss(logits, target, annotated, mode="l1")  # type: ignore[arg-type]
