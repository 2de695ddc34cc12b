"""Tests of frugalseg.metrics: expected values derived from the fixtures' geometry, and MONAI cross-checks."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from frugalseg.data.case import IGNORE
from frugalseg.metrics import (
    METRIC_NAMES,
    assd_mm,
    batch_dice,
    boundary,
    case_metrics,
    dice_score,
    distance_metrics_mm,
    hausdorff_mm,
    hd95_mm,
    ivus_measures,
    jaccard_score,
    percentage_area_difference,
    summarise,
)

# ---------------------------------------------------------------- fixtures built in code


def rect(shape: tuple[int, int], rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """Boolean mask with rows ``rows[0]..rows[1]-1`` and columns ``cols[0]..cols[1]-1`` set."""
    mask = np.zeros(shape, dtype=bool)
    mask[rows[0] : rows[1], cols[0] : cols[1]] = True
    return mask


def ellipse(shape: tuple[int, int], center: tuple[float, float], radii: tuple[float, float]) -> np.ndarray:
    """Pixels whose centre lies inside the axis-aligned ellipse with semi-axes ``radii`` (rows, cols)."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return ((rows - center[0]) / radii[0]) ** 2 + ((cols - center[1]) / radii[1]) ** 2 <= 1.0


def disc(shape: tuple[int, int], center: tuple[float, float], radius: float) -> np.ndarray:
    return ellipse(shape, center, (radius, radius))


def blob(seed: int, shape: tuple[int, int] = (96, 80)) -> np.ndarray:
    """A random multi-component mask (smoothed noise, thresholded); it touches the image border."""
    noise = np.random.default_rng(seed).standard_normal(shape)
    return gaussian_filter(noise, sigma=4.0) > 0.05


def interval_overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


# ---------------------------------------------------------------- overlap


def test_dice_and_jaccard_of_two_overlapping_squares_match_the_geometry() -> None:
    shape = (64, 64)
    rows_a, cols_a, rows_b, cols_b = (10, 40), (10, 40), (20, 60), (25, 55)
    area_a = (rows_a[1] - rows_a[0]) * (cols_a[1] - cols_a[0])
    area_b = (rows_b[1] - rows_b[0]) * (cols_b[1] - cols_b[0])
    inter = interval_overlap(rows_a, rows_b) * interval_overlap(cols_a, cols_b)
    a, b = rect(shape, rows_a, cols_a), rect(shape, rows_b, cols_b)

    assert dice_score(a, b) == pytest.approx(2 * inter / (area_a + area_b))
    assert jaccard_score(a, b) == pytest.approx(inter / (area_a + area_b - inter))
    assert dice_score(a, b) == pytest.approx(dice_score(b, a))
    assert isinstance(dice_score(a, b), float)


def test_disjoint_masks_score_zero_and_identical_masks_score_one() -> None:
    a = rect((32, 32), (0, 10), (0, 10))
    b = rect((32, 32), (20, 30), (20, 30))
    assert dice_score(a, b) == 0.0
    assert jaccard_score(a, b) == 0.0
    assert dice_score(a, a) == 1.0
    assert jaccard_score(a, a) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_jaccard_equals_dice_over_two_minus_dice(seed: int) -> None:
    a, b = blob(seed), blob(seed + 10)
    d = dice_score(a, b)
    assert 0.0 < d < 1.0
    assert jaccard_score(a, b) == pytest.approx(d / (2 - d))


def test_overlap_empty_rules() -> None:
    empty = np.zeros((16, 16), dtype=bool)
    full = rect((16, 16), (4, 8), (4, 8))
    assert dice_score(empty, empty) == 1.0
    assert jaccard_score(empty, empty) == 1.0
    assert dice_score(full, empty) == 0.0
    assert dice_score(empty, full) == 0.0
    assert jaccard_score(full, empty) == 0.0
    assert jaccard_score(empty, full) == 0.0


def test_valid_mask_excludes_pixels_from_both_masks() -> None:
    target = rect((32, 32), (5, 15), (5, 15))
    pred = target | rect((32, 32), (20, 30), (0, 32))  # extra prediction only in rows 20..29
    valid = np.ones((32, 32), dtype=bool)
    valid[20:30] = False
    assert dice_score(pred, target) < 1.0
    assert dice_score(pred, target, valid_mask=valid) == 1.0
    assert jaccard_score(pred, target, valid_mask=valid) == 1.0
    # Nothing left to score in the valid region: both empty there.
    assert dice_score(pred, target, valid_mask=np.zeros((32, 32), dtype=bool)) == 1.0


def test_integer_masks_are_read_as_non_zero_foreground() -> None:
    a = rect((20, 20), (2, 12), (2, 12))
    b = rect((20, 20), (6, 16), (6, 16))
    assert dice_score(a.astype(np.uint8) * 7, b.astype(np.int64)) == pytest.approx(dice_score(a, b))


def test_bad_inputs_raise_value_error() -> None:
    a = np.zeros((8, 8), dtype=bool)
    with pytest.raises(ValueError, match="same shape"):
        dice_score(a, np.zeros((8, 9), dtype=bool))
    with pytest.raises(ValueError, match="2D"):
        jaccard_score(np.zeros((2, 8, 8)), np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="spacing"):
        hd95_mm(a, a, spacing=(1.0, -1.0))
    with pytest.raises(ValueError, match="spacing"):
        hd95_mm(a, a, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="integer"):
        case_metrics(a.astype(np.float32), a.astype(np.float32), num_classes=2, spacing=(1.0, 1.0))


# ---------------------------------------------------------------- distances


def test_boundary_of_a_rectangle_is_its_outline() -> None:
    rows, cols = (3, 11), (4, 10)
    edge = boundary(rect((16, 16), rows, cols))
    height, width = rows[1] - rows[0], cols[1] - cols[0]
    assert edge.sum() == 2 * height + 2 * width - 4
    assert not edge[rows[0] + 1 : rows[1] - 1, cols[0] + 1 : cols[1] - 1].any()
    # A mask that fills the image has the image border as its boundary (off-image counts as background).
    assert boundary(np.ones((5, 6), dtype=bool)).sum() == 2 * 5 + 2 * 6 - 4


@pytest.mark.parametrize("spacing_mm", [1.0, 0.3])
def test_concentric_discs_are_r2_minus_r1_apart(spacing_mm: float) -> None:
    shape, center, r1, r2 = (128, 128), (63.5, 64.2), 20.0, 31.0
    inner, outer = disc(shape, center, r1), disc(shape, center, r2)
    expected = (r2 - r1) * spacing_mm
    spacing = (spacing_mm, spacing_mm)
    for value in (
        hausdorff_mm(inner, outer, spacing=spacing),
        hd95_mm(inner, outer, spacing=spacing),
        assd_mm(inner, outer, spacing=spacing),
    ):
        assert abs(value - expected) <= spacing_mm  # within one pixel


def test_physical_discs_with_anisotropic_pixels() -> None:
    # Spacing (0.5, 1.0) mm: a disc of radius R mm is an ellipse of R/0.5 rows by R/1.0 columns.
    spacing = (0.5, 1.0)
    shape, center, r1_mm, r2_mm = (160, 96), (80.0, 48.0), 12.0, 20.0
    inner = ellipse(shape, center, (r1_mm / spacing[0], r1_mm / spacing[1]))
    outer = ellipse(shape, center, (r2_mm / spacing[0], r2_mm / spacing[1]))
    value = hausdorff_mm(inner, outer, spacing=spacing)
    assert abs(value - (r2_mm - r1_mm)) <= max(spacing)
    # Read with the axes swapped the same pixels are no longer concentric circles in mm.
    assert hausdorff_mm(inner, outer, spacing=spacing[::-1]) > (r2_mm - r1_mm) + max(spacing)


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.5, 2.0), (0.8, 0.3)])
def test_shift_along_rows_and_columns_scales_with_the_matching_spacing(spacing: tuple[float, float]) -> None:
    # A rectangle shifted by k pixels along one axis: the farthest boundary pixel is exactly k steps away.
    shape, k = (80, 80), 4
    target = rect(shape, (20, 40), (20, 50))
    down = rect(shape, (20 + k, 40 + k), (20, 50))
    right = rect(shape, (20, 40), (20 + k, 50 + k))
    assert hausdorff_mm(down, target, spacing=spacing) == pytest.approx(k * spacing[0])
    assert hausdorff_mm(right, target, spacing=spacing) == pytest.approx(k * spacing[1])


@pytest.mark.parametrize("seed", [0, 1])
def test_isotropic_spacing_scales_every_distance(seed: int) -> None:
    a, b = blob(seed), blob(seed + 20)
    unit = distance_metrics_mm(a, b, spacing=(1.0, 1.0))
    scaled = distance_metrics_mm(a, b, spacing=(0.25, 0.25))
    for name, value in unit.items():
        assert value > 0
        assert scaled[name] == pytest.approx(0.25 * value)


def test_distances_do_not_depend_on_where_the_masks_sit_in_the_image() -> None:
    a, b = blob(3, (40, 30)), blob(4, (40, 30))
    big_a = np.zeros((200, 150), dtype=bool)
    big_b = np.zeros((200, 150), dtype=bool)
    big_a[100:140, 70:100] = a
    big_b[100:140, 70:100] = b
    # In the big image the small image's border is no longer a mask border wherever a mask touched it,
    # so compare against masks padded by one background pixel, which have the same boundaries.
    pad_a, pad_b = np.pad(a, 1), np.pad(b, 1)
    spacing = (0.7, 0.4)
    assert distance_metrics_mm(big_a, big_b, spacing=spacing) == pytest.approx(
        distance_metrics_mm(pad_a, pad_b, spacing=spacing)
    )


def test_identical_masks_are_zero_apart() -> None:
    a = blob(5)
    assert distance_metrics_mm(a, a, spacing=(0.4, 0.9)) == {
        "hd95_mm": 0.0,
        "assd_mm": 0.0,
        "hausdorff_mm": 0.0,
    }


def test_distance_empty_rules() -> None:
    empty = np.zeros((16, 16), dtype=bool)
    some = rect((16, 16), (4, 8), (4, 8))
    for fn in (hd95_mm, assd_mm, hausdorff_mm):
        assert fn(empty, empty, spacing=(1.0, 1.0)) == 0.0
        assert math.isnan(fn(some, empty, spacing=(1.0, 1.0)))
        assert math.isnan(fn(empty, some, spacing=(1.0, 1.0)))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.5, 1.7)])
def test_distances_agree_with_monai(seed: int, spacing: tuple[float, float]) -> None:
    monai_metrics = pytest.importorskip("monai.metrics")
    a, b = blob(seed), blob(seed + 100)
    ours = distance_metrics_mm(a, b, spacing=spacing)
    pred = torch.from_numpy(a)[None, None].float()
    target = torch.from_numpy(b)[None, None].float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hd95 = monai_metrics.compute_hausdorff_distance(
            pred, target, include_background=True, percentile=95, spacing=list(spacing)
        )
        hd = monai_metrics.compute_hausdorff_distance(pred, target, include_background=True, spacing=list(spacing))
        assd = monai_metrics.compute_average_surface_distance(
            pred, target, include_background=True, symmetric=True, spacing=list(spacing)
        )
    assert ours["hd95_mm"] == pytest.approx(hd95.item(), rel=1e-5)
    assert ours["hausdorff_mm"] == pytest.approx(hd.item(), rel=1e-5)
    assert ours["assd_mm"] == pytest.approx(assd.item(), rel=1e-5)


# ---------------------------------------------------------------- IVUS


def ivus_label(shape: tuple[int, int], center: tuple[float, float], r_lumen: float, r_eem: float) -> np.ndarray:
    label = np.zeros(shape, dtype=np.uint8)
    label[disc(shape, center, r_eem)] = 2
    label[disc(shape, center, r_lumen)] = 1
    return label


def test_ivus_measures_on_concentric_circles() -> None:
    shape, center, spacing_mm = (160, 160), (80.0, 79.5), 0.02
    lumen_t, eem_t, lumen_p, eem_p = 40.0, 60.0, 44.0, 57.0
    target = ivus_label(shape, center, lumen_t, eem_t)
    pred = ivus_label(shape, center, lumen_p, eem_p)
    out = ivus_measures(pred, target, spacing=(spacing_mm, spacing_mm))
    assert set(out) == {"lumen", "vessel"}

    for region, r_p, r_t in (("lumen", lumen_p, lumen_t), ("vessel", eem_p, eem_t)):
        m = out[region]
        area_p, area_t = math.pi * r_p**2, math.pi * r_t**2  # pixels
        # One disc contains the other: JCC = smaller area / larger area.
        assert m["jcc"] == pytest.approx(min(area_p, area_t) / max(area_p, area_t), abs=0.01)
        assert m["pad"] == pytest.approx(abs(area_p - area_t) / area_t, abs=0.01)
        assert abs(m["hd_mm"] - abs(r_p - r_t) * spacing_mm) <= spacing_mm
        assert m["area_pred_mm2"] == pytest.approx(area_p * spacing_mm**2, rel=0.01)
        assert m["area_target_mm2"] == pytest.approx(area_t * spacing_mm**2, rel=0.01)


def test_ivus_perfect_prediction_and_pad_empty_rule() -> None:
    target = ivus_label((64, 64), (32.0, 32.0), 10.0, 20.0)
    out = ivus_measures(target, target, spacing=(0.05, 0.05))
    for m in out.values():
        assert (m["jcc"], m["pad"], m["hd_mm"]) == (1.0, 0.0, 0.0)
    empty = np.zeros((8, 8), dtype=bool)
    some = rect((8, 8), (2, 4), (2, 4))
    assert percentage_area_difference(empty, empty) == 0.0
    assert math.isnan(percentage_area_difference(some, empty))
    assert percentage_area_difference(empty, some) == 1.0


# ---------------------------------------------------------------- batch Dice (torch)


def test_batch_dice_equals_per_item_dice_score() -> None:
    gen = torch.Generator().manual_seed(0)
    num_classes, batch = 4, 3
    target = torch.randint(0, num_classes, (batch, 24, 20), generator=gen)
    pred = torch.where(torch.rand(batch, 24, 20, generator=gen) < 0.7, target, torch.randint_like(target, 4))
    target[0, :6] = IGNORE  # partially labelled item
    pred[1][pred[1] == 3] = 0  # class 3 missing from the prediction of item 1
    target[2][target[2] == 2] = 1  # class 2 missing from the target of item 2
    pred[2][pred[2] == 2] = 1  # ... and from its prediction: both empty
    scores = batch_dice(pred, target, num_classes=num_classes)
    assert scores.shape == (batch, num_classes - 1)
    assert scores.dtype == torch.float32
    for b in range(batch):
        t = target[b].numpy()
        p = pred[b].numpy()
        valid = t != IGNORE
        for c in range(1, num_classes):
            expected = dice_score(p == c, t == c, valid_mask=valid)
            assert scores[b, c - 1].item() == pytest.approx(expected, rel=1e-6)
    assert scores[2, 1].item() == 1.0  # class 2 empty in both


def test_batch_dice_empty_rule_and_checks() -> None:
    target = torch.zeros(2, 8, 8, dtype=torch.int64)
    pred = torch.zeros(2, 8, 8, dtype=torch.int64)
    pred[1, 2:4, 2:4] = 1  # class 1 predicted but absent from the target
    scores = batch_dice(pred, target, num_classes=2)
    assert scores.tolist() == [[1.0], [0.0]]
    with pytest.raises(ValueError, match="integer"):
        batch_dice(pred.float(), target, num_classes=2)
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        batch_dice(pred[0], target[0], num_classes=2)


# ---------------------------------------------------------------- per-case metrics and summaries


def test_case_metrics_match_the_single_metrics_and_ignore_unlabelled_pixels() -> None:
    shape = (64, 64)
    target = np.zeros(shape, dtype=np.uint8)
    target[rect(shape, (10, 30), (10, 30))] = 1
    target[rect(shape, (35, 55), (35, 60))] = 2
    pred = np.zeros(shape, dtype=np.uint8)
    pred[rect(shape, (12, 32), (10, 30))] = 1
    pred[rect(shape, (35, 55), (38, 60))] = 2
    spacing = (0.5, 0.25)
    with_ignore = target.copy()
    with_ignore[:, :5] = IGNORE
    pred_ignore = pred.copy()
    pred_ignore[:, :5] = 1  # predictions inside the unlabelled strip must not count for overlap

    out = case_metrics(pred_ignore, with_ignore, num_classes=3, spacing=spacing, class_names=["bg", "a", "b"])
    assert set(out["per_class"]) == {"a", "b"}
    for c, name in ((1, "a"), (2, "b")):
        scores = out["per_class"][name]
        assert set(scores) == set(METRIC_NAMES)
        assert scores["dice"] == pytest.approx(dice_score(pred == c, target == c))
        assert scores["jaccard"] == pytest.approx(jaccard_score(pred == c, target == c))
    dist_b = distance_metrics_mm(pred == 2, target == 2, spacing=spacing)
    assert out["per_class"]["b"]["hd95_mm"] == pytest.approx(dist_b["hd95_mm"])
    assert out["per_class"]["b"]["assd_mm"] == pytest.approx(dist_b["assd_mm"])
    for name in METRIC_NAMES:
        assert out["mean"][name] == pytest.approx((out["per_class"]["a"][name] + out["per_class"]["b"][name]) / 2)


def test_case_metrics_mean_skips_undefined_distances() -> None:
    shape = (32, 32)
    target = np.zeros(shape, dtype=np.uint8)
    target[rect(shape, (4, 12), (4, 12))] = 1
    pred = target.copy()
    pred[rect(shape, (20, 24), (20, 24))] = 2  # class 2 predicted, absent from the target
    out = case_metrics(pred, target, num_classes=3, spacing=(1.0, 1.0))
    assert set(out["per_class"]) == {"class_1", "class_2"}
    assert math.isnan(out["per_class"]["class_2"]["hd95_mm"])
    assert out["per_class"]["class_2"]["dice"] == 0.0
    assert out["mean"]["hd95_mm"] == 0.0  # only class 1 (perfect) counts
    assert out["mean"]["dice"] == pytest.approx(0.5)


def test_summarise_means_per_class_and_counts_undefined_hd95() -> None:
    def result(dice: tuple[float, float], hd95: tuple[float, float]) -> dict:
        per_class = {
            name: {"dice": d, "jaccard": d / (2 - d), "hd95_mm": h, "assd_mm": h / 2}
            for name, d, h in zip(("lumen", "wall"), dice, hd95, strict=True)
        }
        return {"per_class": per_class, "mean": {}}

    nan = float("nan")
    cases = [result((0.9, 0.0), (1.0, nan)), result((0.7, 0.6), (3.0, 4.0)), result((0.8, 0.5), (2.0, nan))]
    out = summarise(cases)
    assert out["num_cases"] == 3
    assert out["per_class"]["lumen"]["dice"] == pytest.approx((0.9 + 0.7 + 0.8) / 3)
    assert out["per_class"]["wall"]["dice"] == pytest.approx((0.0 + 0.6 + 0.5) / 3)
    assert out["per_class"]["lumen"]["hd95_mm"] == pytest.approx(2.0)
    assert out["per_class"]["wall"]["hd95_mm"] == pytest.approx(4.0)
    assert out["per_class"]["wall"]["assd_mm"] == pytest.approx(2.0)
    assert out["per_class"]["lumen"]["hd95_undefined"] == 0
    assert out["per_class"]["wall"]["hd95_undefined"] == 2
    assert out["mean"]["dice"] == pytest.approx((0.8 + 1.1 / 3) / 2)
    assert out["mean"]["hd95_mm"] == pytest.approx(3.0)


def test_summarise_of_real_case_metrics_and_its_checks() -> None:
    target = ivus_label((48, 48), (24.0, 24.0), 8.0, 16.0)
    pred = ivus_label((48, 48), (25.0, 24.0), 9.0, 15.0)
    one = case_metrics(pred, target, num_classes=3, spacing=(0.1, 0.1), class_names=["bg", "lumen", "wall"])
    out = summarise([one, one])
    assert out["per_class"]["lumen"]["dice"] == pytest.approx(one["per_class"]["lumen"]["dice"])
    assert out["mean"]["assd_mm"] == pytest.approx(one["mean"]["assd_mm"])
    with pytest.raises(ValueError, match="at least one"):
        summarise([])
    other = case_metrics(pred, target, num_classes=3, spacing=(0.1, 0.1))
    with pytest.raises(ValueError, match="classes"):
        summarise([one, other])
    with pytest.raises(ValueError, match="class_names"):
        case_metrics(pred, target, num_classes=3, spacing=(0.1, 0.1), class_names=["lumen", "wall"])
