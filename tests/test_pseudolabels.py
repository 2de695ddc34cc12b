"""Contracts of frugalseg.pseudolabels: random walker, region growing, boxes, CAM, refinement, filtering, folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from frugalseg.annotations import Point, Points
from frugalseg.data.case import IGNORE, Box
from frugalseg.errors import InputError
from frugalseg.pseudolabels import (
    agreement_filter,
    box_random_walker_labels,
    box_seeds,
    class_activation_maps,
    filter_by_confidence,
    label_agreement,
    labels_from_probabilities,
    probability_margin,
    random_walker_labels,
    random_walker_probabilities,
    read_pseudo_labels,
    refine_pseudo_labels,
    region_growing,
    threshold_cams,
    tile_shuffle,
    train_tag_classifier,
    unit_range,
    write_pseudo_labels,
)


def two_regions(size: int = 48, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A noisy image whose left half is dark (class 0) and right half bright (class 1)."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((size, size), dtype=np.uint8)
    truth[:, size // 2 :] = 1
    image = np.where(truth == 1, 180.0, 60.0) + rng.normal(0, 15, truth.shape)
    return image, truth


def disc_image(size: int = 64, *, radius: float = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size]
    disc = np.hypot(rows - size / 2, cols - size / 2 - 3) < radius
    return np.where(disc, 200.0, 50.0) + rng.normal(0, 12, disc.shape), disc


def nested_discs(size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Bright inner disc (class 1) inside a dim ring (class 2), dark background."""
    rows, cols = np.mgrid[:size, :size]
    radius = np.hypot(rows - 24, cols - 22)
    label = np.where(radius < 7, 1, np.where(radius < 14, 2, 0)).astype(np.uint8)
    image = np.choose(label, [40.0, 200.0, 120.0]) + np.random.default_rng(3).normal(0, 8, label.shape)
    return image, label


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


# ------------------------------------------------------------------------------------------ random walker


def test_random_walker_recovers_two_regions_from_two_scribbles() -> None:
    image, truth = two_regions()
    seeds = np.full(truth.shape, IGNORE, dtype=np.uint8)
    seeds[8:40, 6] = 0
    seeds[8:40, 42] = 1
    label, confidence = random_walker_labels(image, seeds)
    assert (label == truth).mean() > 0.98
    assert np.all(confidence[seeds != IGNORE] == 1.0)
    assert confidence.min() >= 0.0 and confidence.max() <= 1.0
    threshold = float(np.quantile(confidence[seeds == IGNORE], 0.2))
    kept, _ = random_walker_labels(image, seeds, min_margin=threshold)
    assert np.array_equal(kept == IGNORE, confidence < threshold)  # exactly the low-margin pixels go
    assert (kept == IGNORE).any() and np.all(kept[seeds != IGNORE] == seeds[seeds != IGNORE])


def test_random_walker_probabilities_cover_only_seeded_classes() -> None:
    image, _ = two_regions(24)
    seeds = np.full(image.shape, IGNORE, dtype=np.uint8)
    seeds[5, 3], seeds[5, 20] = 0, 2
    probabilities = random_walker_probabilities(image, seeds, num_classes=4)
    assert probabilities.shape == (4, 24, 24)
    assert np.all(probabilities[[1, 3]] == 0)
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-3)
    assert np.allclose(probability_margin(probabilities)[5, 3], 1.0, atol=1e-3)


def test_random_walker_spacing_counts_by_its_ratio_only() -> None:
    image, _ = two_regions(32)
    image = image + np.random.default_rng(0).normal(0.0, 0.05, image.shape)
    seeds = np.full(image.shape, IGNORE, dtype=np.uint8)
    seeds[4:28, 3], seeds[4:28, 28] = 0, 1
    square = random_walker_probabilities(image, seeds, spacing=(1.0, 1.0))
    np.testing.assert_allclose(random_walker_probabilities(image, seeds, spacing=(5.0, 5.0)), square, atol=1e-4)
    np.testing.assert_allclose(random_walker_probabilities(image, seeds), square, atol=1e-4)
    stretched = random_walker_probabilities(image, seeds, spacing=(1.0, 3.0))
    np.testing.assert_allclose(random_walker_probabilities(image, seeds, spacing=(2.0, 6.0)), stretched, atol=1e-4)
    assert np.abs(stretched - square).max() > 1e-2
    with pytest.raises(ValueError, match="spacing"):
        random_walker_probabilities(image, seeds, spacing=(0.0, 1.0))


def test_random_walker_without_seeds_or_with_one_class() -> None:
    image, _ = two_regions(16)
    none = np.full(image.shape, IGNORE, dtype=np.uint8)
    label, confidence = random_walker_labels(image, none)
    assert np.all(label == IGNORE) and np.all(confidence == 0)
    single = none.copy()
    single[3, 3] = 1
    label, _ = random_walker_labels(image, single)
    assert np.all(label == 1)
    with pytest.raises(ValueError, match="seeds shape"):
        random_walker_labels(image, none[:4])


def test_probability_margin_is_top1_minus_top2() -> None:
    probs = np.array([[[0.6]], [[0.3]], [[0.1]]], dtype=np.float32)
    assert probability_margin(probs)[0, 0] == pytest.approx(0.3)


def test_unit_range_uses_percentiles_and_handles_constant_images() -> None:
    image = np.arange(101, dtype=np.float64).reshape(1, 101)
    out = unit_range(image, percentiles=(10, 90))
    assert out.min() == 0.0 and out.max() == 1.0 and out[0, 50] == pytest.approx(0.5)
    assert np.all(unit_range(np.full((3, 3), 7.0)) == 0)


# ------------------------------------------------------------------------------------------ region growing


def test_region_growing_stays_inside_a_disc() -> None:
    image, disc = disc_image()
    label, confidence = region_growing(image, Points((Point(32, 35, 1),)))
    grown = label == 1
    assert grown[32, 35] and not (grown & ~disc).any()
    assert grown.sum() > 0.5 * disc.sum()
    assert np.all(confidence[~grown & (label == IGNORE)] == 0)


def test_region_growing_negative_clicks_and_background_margin() -> None:
    image, disc = disc_image()
    label, _ = region_growing(image, [Point(32, 35, 1), Point(3, 3, 0)], background_margin=6)
    assert label[3, 3] == 0 and label[60, 60] == 0  # grown from the negative click / far from the object
    assert not ((label == 1) & ~disc).any()
    assert not ((label == 0) & disc).any()


def test_region_growing_shrinks_a_leaking_region() -> None:
    image = np.full((40, 40), 100.0)
    label, _ = region_growing(image, [Point(20, 20, 1)], tolerance=0.5, max_fraction=0.1, smoothing=0)
    # a flat image leaks everywhere at any tolerance: the cap leaves only the click
    assert (label == 1).sum() <= 0.1 * label.size and label[20, 20] == 1


def test_region_growing_contested_pixels_are_unknown() -> None:
    image = np.full((20, 20), 100.0)
    label, confidence = region_growing(image, [Point(5, 5, 1), Point(15, 15, 2)], tolerance=0.5, max_fraction=1.0)
    assert label[5, 5] == 1 and label[15, 15] == 2
    assert (label != IGNORE).sum() == 2 and confidence.sum() == 2.0  # both regions cover everything else


# ------------------------------------------------------------------------------------------ boxes


def test_box_seeds_background_outside_and_ring_between_nested_boxes() -> None:
    _, label = nested_discs()
    inner = Box(xmin=15, ymin=17, xmax=29, ymax=31, label=1)
    outer = Box(xmin=8, ymin=10, xmax=36, ymax=38, label=2)
    seeds = box_seeds(label.shape, [inner, outer], margin=2)
    assert np.all(seeds[:8] == 0) and seeds[24, 22] == 1
    assert (seeds == 2).any() and np.all(label[seeds == 2] == 2)
    assert np.all(label[seeds == 1] == 1) and np.all(label[seeds == 0] == 0)


def test_box_random_walker_recovers_nested_discs() -> None:
    image, label = nested_discs()
    boxes = [Box(xmin=15, ymin=17, xmax=29, ymax=31, label=1), Box(xmin=8, ymin=10, xmax=36, ymax=38, label=2)]
    pseudo, _ = box_random_walker_labels(image, boxes, num_classes=3)
    assert dice(pseudo == 1, label == 1) > 0.9 and dice(pseudo == 2, label == 2) > 0.9
    assert np.all(pseudo[:, :8] == 0)  # nothing outside the boxes


# ------------------------------------------------------------------------------------------ CAM


def tagged_set(
    count: int = 24, size: int = 24, *, every: bool = False
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Images with a bright disc in every other one (or every one), z-scored; tags and the disc masks."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:size, :size]
    images, tags, masks = [], [], []
    for i in range(count):
        present = every or i % 2 == 0
        centre = rng.uniform(7, size - 7, 2)
        mask = (np.hypot(rows - centre[0], cols - centre[1]) < rng.uniform(4, 6)) & present
        image = mask + rng.normal(0, 0.3, mask.shape)
        images.append((image - image.mean()) / image.std())
        tags.append([True, present])
        masks.append(mask)
    return torch.tensor(np.stack(images), dtype=torch.float32)[:, None], torch.tensor(tags), np.stack(masks)


@pytest.mark.parametrize("every", [False, True], ids=["half-tagged", "always-present"])
def test_cam_highlights_the_tagged_object(every: bool) -> None:
    images, tags, masks = tagged_set(every=every)
    classifier = train_tag_classifier(images, tags, epochs=8, batch_size=8, seed=0)
    cams = class_activation_maps(classifier, images)[:, 0].numpy()
    positive = tags[:, 1].numpy()
    inside, outside = cams[positive][masks[positive]].mean(), cams[positive][~masks[positive]].mean()
    assert inside > 1.5 * outside
    label, _ = threshold_cams(torch.from_numpy(cams)[:, None], tags, foreground_threshold=0.5, background_threshold=0.2)
    assert torch.all(label[~tags[:, 1]] == 0)  # untagged images are background


def test_tag_classifier_is_deterministic_by_seed() -> None:
    images, tags, _ = tagged_set(8, 16)
    first = class_activation_maps(train_tag_classifier(images, tags, epochs=1, batch_size=4, seed=3), images)
    second = class_activation_maps(train_tag_classifier(images, tags, epochs=1, batch_size=4, seed=3), images)
    assert torch.equal(first, second)


def test_threshold_cams_two_thresholds_and_tags() -> None:
    cams = torch.tensor([[[[0.9, 0.2, 0.05]], [[0.1, 0.6, 0.0]]]])  # (1, 2 classes, 1, 3)
    tags = torch.tensor([[True, True, False]])  # class 2 untagged
    label, confidence = threshold_cams(cams, tags, foreground_threshold=0.5, background_threshold=0.1)
    assert label.tolist() == [[[1, IGNORE, 0]]]
    assert confidence[0, 0].tolist() == pytest.approx([0.9, 0.0, 0.95])


def test_tile_shuffle_permutes_tiles_reproducibly() -> None:
    images = torch.arange(2 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8)
    first = tile_shuffle(images, tiles=2, generator=torch.Generator().manual_seed(1))
    second = tile_shuffle(images, tiles=2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(first, second)
    assert torch.equal(first.flatten(1).sort().values, images.flatten(1).sort().values)
    tiles = {tuple(first[0, 0, r : r + 4, c : c + 4].flatten().tolist()) for r in (0, 4) for c in (0, 4)}
    assert tiles == {tuple(images[0, 0, r : r + 4, c : c + 4].flatten().tolist()) for r in (0, 4) for c in (0, 4)}


# ------------------------------------------------------------------------------------------ refinement


def test_refine_calls_fit_and_estimate_in_turn() -> None:
    calls: list[tuple[str, object, int]] = []

    def fit(labels: str, round_index: int) -> str:
        calls.append(("fit", labels, round_index))
        return f"model{round_index}"

    def estimate(model: str, round_index: int) -> str:
        calls.append(("estimate", model, round_index))
        return f"labels{round_index}"

    model, labels = refine_pseudo_labels("labels0", fit=fit, estimate=estimate, rounds=2)
    assert (model, labels) == ("model2", "labels2")
    assert calls == [
        ("fit", "labels0", 0),
        ("estimate", "model0", 1),
        ("fit", "labels1", 1),
        ("estimate", "model1", 2),
        ("fit", "labels2", 2),
    ]


def test_labels_from_probabilities_respects_allowed_classes() -> None:
    probs = torch.tensor([0.2, 0.5, 0.3]).view(1, 3, 1, 1)
    label, confidence = labels_from_probabilities(probs)
    assert int(label) == 1 and float(confidence) == pytest.approx(0.2)
    label, confidence = labels_from_probabilities(probs, allowed=torch.tensor([[True, False, True]]))
    assert int(label) == 2 and float(confidence) == pytest.approx(0.6 - 0.4)
    label, _ = labels_from_probabilities(probs, min_confidence=0.5)
    assert int(label) == IGNORE


# ------------------------------------------------------------------------------------------ quality


def test_filter_by_confidence_modes() -> None:
    label = np.array([[1, 0, IGNORE]], dtype=np.uint8)
    confidence = np.array([[0.9, 0.2, 0.0]], dtype=np.float32)
    dropped, weight = filter_by_confidence(label, confidence, threshold=0.5)
    assert dropped.tolist() == [[1, IGNORE, IGNORE]] and weight.tolist() == [[1.0, 0.0, 0.0]]
    kept, weight = filter_by_confidence(label, confidence, mode="weight")
    assert kept.tolist() == [[1, 0, IGNORE]] and weight[0].tolist() == pytest.approx([0.9, 0.2, 0.0])
    both, weight = filter_by_confidence(label, confidence, threshold=0.5, mode="both")
    assert both.tolist() == [[1, IGNORE, IGNORE]] and weight[0].tolist() == pytest.approx([0.9, 0.0, 0.0])


def test_agreement_of_two_generators() -> None:
    a = np.array([[1, 1, 0, IGNORE]], dtype=np.uint8)
    b = np.array([[1, 0, 0, 0]], dtype=np.uint8)
    label, confidence = agreement_filter(a, b, confidence_a=np.full((1, 4), 0.5, np.float32))
    assert label.tolist() == [[1, IGNORE, 0, IGNORE]] and confidence[0].tolist() == pytest.approx([0.75, 0, 0.75, 0])
    # Dice of class 1 over the pixels both label: a has 2, b has 1, overlap 1 -> 2/3
    assert label_agreement(a, b, num_classes=2) == pytest.approx(2 / 3)
    assert label_agreement(a, a, num_classes=3) == 1.0


# ------------------------------------------------------------------------------------------ folders


def test_pseudo_label_folder_round_trip_with_confidences(tmp_path: Path) -> None:
    first = np.array([[0, 1], [IGNORE, 2]], dtype=np.uint8)
    second = np.array([[1, 1], [0, 0]], dtype=np.uint8)
    write_pseudo_labels(tmp_path, {"a": first, "sub/b": second}, confidence={"a": {1: 0.5, 2: 0.25}, "sub/b": 0.8})
    read = read_pseudo_labels(tmp_path, expected_shapes={"a": (2, 2)})
    assert set(read) == {"a", "sub/b"}
    assert np.array_equal(read["a"].label, first)
    assert read["a"].weight.tolist() == [[1.0, 0.5], [0.0, 0.25]]
    assert np.allclose(read["sub/b"].weight, 0.8)


def test_pseudo_label_folder_without_confidence_and_bad_confidence(tmp_path: Path) -> None:
    write_pseudo_labels(tmp_path, {"a": np.zeros((3, 3), dtype=np.uint8)})
    assert np.all(read_pseudo_labels(tmp_path)["a"].weight == 1.0)
    (tmp_path / "confidence.json").write_text(json.dumps({"cases": {"a": 1.5}}))
    with pytest.raises(InputError, match=r"confidence 1\.5"):
        read_pseudo_labels(tmp_path)
    (tmp_path / "confidence.json").write_text(json.dumps({"cases": {"zz": 0.5}}))
    with pytest.raises(InputError, match="zz"):
        read_pseudo_labels(tmp_path)
