"""Weak supervision in the engine: configuration, targets, objectives, training runs, benchmark table."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TINY, StubSegmenter
from frugalseg.annotations import Boxes, Point, Points, Scribbles, write_annotations_json
from frugalseg.data.case import IGNORE, Box, Dataset
from frugalseg.engine.config import load_config
from frugalseg.engine.inference import SegmentationModel
from frugalseg.engine.preprocess import image_to_tensor
from frugalseg.engine.weak_bench import bench_weak, format_weak_table, parse_methods
from frugalseg.engine.weak_config import WeakConfig, load_weak_config
from frugalseg.engine.weak_foundation import boxes_from_label_maps, foundation_region_labels
from frugalseg.engine.weak_labels import build_weak_targets, weak_annotations
from frugalseg.engine.weak_losses import marginal_dice_loss, weak_loss, weighted_partial_cross_entropy
from frugalseg.engine.weak_targets import (
    WeakBatch,
    WeakTargets,
    boxes_from_masks,
    make_batch,
    rasterise_boxes,
    scale_boxes,
    sparse_label_to_tensor,
)
from frugalseg.engine.weak_train import WEAK_CONFIG_FILE, train_weak
from frugalseg.errors import InputError
from frugalseg.losses import dice_ce_loss, dice_loss, partial_cross_entropy
from frugalseg.pseudolabels import write_pseudo_labels

B, C, S = 2, 3, 8


def random_logits(seed: int = 0) -> torch.Tensor:
    return torch.randn(B, C, S, S, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def random_target(seed: int = 1) -> torch.Tensor:
    return torch.randint(0, C, (B, S, S), generator=torch.Generator().manual_seed(seed))


def batch_of(label: torch.Tensor, *, annotated: torch.Tensor | None = None, boxes: list | None = None) -> WeakBatch:
    return WeakBatch(
        images=torch.randn(label.shape[0], 1, *label.shape[1:], generator=torch.Generator().manual_seed(5)),
        label=label,
        weight=(label != IGNORE).float(),
        inside=torch.ones_like(label, dtype=torch.bool),
        boxes=boxes or [[] for _ in range(label.shape[0])],
        annotated=torch.ones(label.shape[0], C, dtype=torch.bool) if annotated is None else annotated,
    )


# ------------------------------------------------------------------------------------------ configuration


def test_weak_config_defaults_round_trip_and_errors(tmp_path: Path) -> None:
    assert WeakConfig(labels="boxes").method == "tightness"
    assert WeakConfig(labels="points", method="region_growing").uses_pseudo_labels
    config = WeakConfig(labels="partial", partial_groups=((1,), (2,)), cam_thresholds=(0.2, 0.4))
    path = tmp_path / WEAK_CONFIG_FILE
    path.write_text(json.dumps(config.to_dict()))
    assert load_weak_config(path) == config
    with pytest.raises(InputError, match="method='cam'"):
        WeakConfig(labels="boxes", method="cam")
    with pytest.raises(InputError, match="labels='masks'"):
        WeakConfig(labels="masks")
    with pytest.raises(InputError, match="pseudo"):
        WeakConfig(labels="pseudo")
    with pytest.raises(InputError, match="crf_weight"):
        WeakConfig(crf_weight=-1.0)
    with pytest.raises(InputError, match="walker_box_margin"):
        WeakConfig(walker_box_margin=-0.1)
    path.write_text(json.dumps({**config.to_dict(), "extra": 1}))
    with pytest.raises(InputError, match="unknown weak-training fields"):
        load_weak_config(path)


def test_parse_methods() -> None:
    assert parse_methods(["points:region_growing", "points", "boxes"]) == {
        "points": ("region_growing", "point_loss"),
        "boxes": ("tightness",),
    }
    with pytest.raises(InputError, match="--method boxes:nope"):
        parse_methods(["boxes:nope"])


# ------------------------------------------------------------------------------------------ targets


def test_sparse_resize_keeps_single_clicks_and_dense_majority() -> None:
    label = np.full((64, 64), IGNORE, dtype=np.uint8)
    label[10, 41] = 2
    label[60, 3] = 0
    small = sparse_label_to_tensor(label, size=16, num_classes=3)
    assert small[2, 10] == 2 and small[15, 0] == 0
    assert int((small != IGNORE).sum()) == 2
    with pytest.raises(ValueError, match="outside"):
        sparse_label_to_tensor(label, size=16, num_classes=2)


def test_boxes_scale_rasterise_and_re_derive() -> None:
    boxes = scale_boxes([Box(xmin=10, ymin=20, xmax=30, ymax=41, label=2)], (80, 40), size=20)
    assert boxes == [Box(xmin=5, ymin=5, xmax=15, ymax=11, label=2)]
    masks, labels = rasterise_boxes(boxes, size=20, max_boxes=2)
    assert masks.shape == (2, 20, 20) and labels.tolist() == [2, 0] and int(masks[0].sum()) == 10 * 6
    assert boxes_from_masks(masks[None], labels[None]) == [boxes]


def _targets(label: torch.Tensor, boxes: list[list[Box]]) -> WeakTargets:
    count, size = label.shape[0], label.shape[-1]
    planes = [rasterise_boxes(b, size=size, max_boxes=1) for b in boxes]
    return WeakTargets(
        label=label,
        weight=torch.ones(label.shape),
        boxes=torch.stack([p[0] for p in planes]),
        box_labels=torch.stack([p[1] for p in planes]),
        annotated=torch.ones(count, C, dtype=torch.bool),
        tags=torch.ones(count, C, dtype=torch.bool),
    )


def test_make_batch_warps_every_target_consistently() -> None:
    size = 24
    label = torch.zeros(4, size, size, dtype=torch.long)
    label[:, 6:15, 8:20] = 1
    boxes = [[Box(xmin=8, ymin=6, xmax=20, ymax=15, label=1)] for _ in range(4)]
    images = torch.randn(4, 1, size, size, generator=torch.Generator().manual_seed(0))
    targets = _targets(label, boxes)
    index = torch.arange(4)
    plain = make_batch(images, targets, index, generator=torch.Generator(), augment=False)
    assert plain.boxes == boxes and torch.equal(plain.label, label) and plain.inside.all()

    first = make_batch(images, targets, index, generator=torch.Generator().manual_seed(3), rotation=False)
    second = make_batch(images, targets, index, generator=torch.Generator().manual_seed(3), rotation=False)
    assert torch.equal(first.images, second.images) and first.boxes == second.boxes
    for i in range(4):
        # the rectangle object stays exactly its box (no rotation), and outside pixels are unlabelled
        rows, cols = torch.nonzero(first.label[i] == 1, as_tuple=True)
        (box,) = first.boxes[i]
        assert (box.ymin, box.ymax, box.xmin, box.xmax) == (
            int(rows.min()),
            int(rows.max()) + 1,
            int(cols.min()),
            int(cols.max()) + 1,
        )
        assert torch.equal(first.label[i] == IGNORE, ~first.inside[i])
        assert torch.all(first.weight[i][~first.inside[i]] == 0)


def test_build_targets_for_each_pseudo_label_method(disc_dataset: Dataset) -> None:
    cases = disc_dataset.cases[:4]
    images = torch.stack([image_to_tensor(c.image, size=32, in_channels=1) for c in cases])
    truth = torch.stack(
        [F.interpolate(torch.from_numpy(c.label)[None, None].float(), size=(32, 32))[0, 0].long() for c in cases]
    )
    for kind, method in [
        ("boxes", "random_walker"),
        ("scribbles", "random_walker"),
        ("points", "random_walker"),
        ("points", "region_growing"),
    ]:
        weak = WeakConfig(labels=kind, method=method, points_per_object=3, negative_points=3)
        annotations = weak_annotations(cases, weak, num_classes=3, seed=0)
        targets = build_weak_targets(cases, annotations, images, weak=weak, num_classes=3)
        known = targets.label != IGNORE
        accuracy = float((targets.label[known] == truth[known]).float().mean())
        assert accuracy > 0.85, (kind, method, accuracy)
        assert torch.all(targets.weight[~known] == 0)


def test_foundation_pseudo_masks_from_boxes(tmp_path: Path, disc_dataset: Dataset) -> None:
    cases = disc_dataset.cases[:4]
    images = torch.stack([image_to_tensor(c.image, size=32, in_channels=1) for c in cases])
    weak = WeakConfig(labels="boxes", method="litemedsam")
    assert weak.uses_pseudo_labels
    annotations = weak_annotations(cases, weak, num_classes=3, seed=0)
    stub = StubSegmenter(follow_box=True)  # segments each box exactly
    targets = build_weak_targets(cases, annotations, images, weak=weak, num_classes=3, segmenter=stub)
    assert stub.encoded == len(cases)
    for i, case in enumerate(cases):
        filled = np.zeros(case.shape, dtype=np.uint8)
        for box in reversed(annotations[case.case_id].boxes):  # type: ignore[union-attr]
            filled[int(box.ymin) : int(box.ymax), int(box.xmin) : int(box.xmax)] = box.label  # first box wins ties
        expected = F.interpolate(torch.from_numpy(filled)[None, None].float(), size=(32, 32), mode="nearest")
        agreement = float((targets.label[i] == expected[0, 0].long()).float().mean())
        assert agreement > 0.9, (case.case_id, agreement)
    unsure = StubSegmenter(follow_box=True, score=0.1)  # every object below the confidence floor: unlabelled
    dropped = build_weak_targets(cases, annotations, images, weak=weak, num_classes=3, segmenter=unsure)
    assert torch.all((dropped.label == IGNORE) | (dropped.label == 0)) and (dropped.label == IGNORE).any()
    assert torch.all(dropped.weight[dropped.label == IGNORE] == 0)
    dataset = dataclasses.replace(disc_dataset, cases=disc_dataset.cases[:8])
    result = train_weak(dataset, TINY, weak, tmp_path / "run", segmenter=stub)
    assert result.epochs_run == 2 and SegmentationModel.load(tmp_path / "run").num_classes == 3


def test_boxes_from_label_maps_take_the_largest_region_in_original_pixels(disc_dataset: Dataset) -> None:
    case = dataclasses.replace(disc_dataset.cases[0], image=np.zeros((40, 80), np.uint8), label=None)
    coarse = torch.zeros(1, 8, 8, dtype=torch.long)
    coarse[0, 1:4, 2:6] = 1  # the largest class-1 region
    coarse[0, 6, 7] = 1  # a stray pixel of class 1
    coarse[0, 5:7, 0:2] = IGNORE  # never a class
    tags = torch.tensor([[True, True, True]])  # class 2 is tagged but nowhere in the map
    (boxes,) = boxes_from_label_maps(coarse, [case], classes=tags)
    assert boxes.boxes == (Box(xmin=20.0, ymin=5.0, xmax=60.0, ymax=20.0, label=1),)  # x * 80 / 8, y * 40 / 8
    assert boxes_from_label_maps(coarse, [case], classes=torch.tensor([[True, False, False]]))[0].boxes == ()
    strokes = torch.full((1, 8, 8), IGNORE, dtype=torch.long)
    strokes[0, 6, 7] = 1  # a stroke on the stray pixel: its region is boxed, the unstroked big one is not
    strokes[0, 0, 0] = 2  # a stroke where nothing was predicted: boxed by itself
    strokes[0, 7, 0] = 0  # background strokes ask for no box
    (boxes,) = boxes_from_label_maps(coarse, [case], seeds=strokes)
    assert set(boxes.boxes) == {
        Box(xmin=70.0, ymin=30.0, xmax=80.0, ymax=35.0, label=1),
        Box(xmin=0, ymin=0, xmax=10, ymax=5, label=2),
    }
    (wide,) = boxes_from_label_maps(coarse, [case], classes=tags, margin=0.5)  # grows 2 columns and 1.5 rows
    assert wide.boxes == (Box(xmin=0.0, ymin=0.0, xmax=80.0, ymax=27.5, label=1),)  # clipped to the image
    with pytest.raises(ValueError, match="exactly one"):
        boxes_from_label_maps(coarse, [case])


def test_foundation_pseudo_masks_from_tags_and_scribbles(disc_dataset: Dataset) -> None:
    cases = disc_dataset.cases[:2]
    coarse = torch.zeros(2, 32, 32, dtype=torch.long)
    coarse[:, 8:20, 10:24] = 1
    tags = torch.tensor([[True, True, False], [True, True, True]])
    stub = StubSegmenter(follow_box=True)
    label = foundation_region_labels(cases, coarse, classes=tags, num_classes=3, segmenter=stub)
    assert torch.equal(label[0], coarse[0])  # the stub draws the box it is given, at the training size
    assert torch.equal(label[1] == 1, coarse[1] == 1)  # class 2 is tagged but unlocated: its background is unknown
    assert torch.all(label[1][coarse[1] == 0] == IGNORE)
    assert stub.tight_boxes and not any(stub.tight_boxes)  # boxes of coarse regions are not annotations
    strokes = torch.full((2, 32, 32), IGNORE, dtype=torch.long)
    strokes[:, 10:12, 12:20] = 1
    strokes[:, 14, 14] = 0  # the expert's background stroke inside the box wins over the model
    label = foundation_region_labels(cases, coarse, seeds=strokes, num_classes=3, segmenter=stub)
    expected = coarse.clone()
    expected[:, 14, 14] = 0
    assert torch.equal(label, expected)
    weak = WeakConfig(labels="tags", method="litemedsam", cam_epochs=1)
    annotations = weak_annotations(cases, weak, num_classes=3, seed=0)
    images = torch.stack([image_to_tensor(c.image, size=32, in_channels=1) for c in cases])
    stub = StubSegmenter(follow_box=True)
    targets = build_weak_targets(cases, annotations, images, weak=weak, num_classes=3, segmenter=stub)
    assert stub.encoded == sum(bool((targets.label[i] != IGNORE).any()) for i in range(2))
    assert torch.all(targets.weight[targets.label == IGNORE] == 0)


def test_walker_regions_prompt_the_foundation_model_with_widened_boxes(disc_dataset: Dataset) -> None:
    cases = disc_dataset.cases[:2]
    images = torch.stack([image_to_tensor(c.image, size=32, in_channels=1) for c in cases])
    annotations = weak_annotations(cases, WeakConfig(labels="scribbles"), num_classes=3, seed=0)
    scribbles = [annotations[c.case_id] for c in cases]
    strokes = torch.stack([sparse_label_to_tensor(a.label, size=32, num_classes=3) for a in scribbles])  # type: ignore[union-attr]
    stroked = strokes != IGNORE
    foreground = {}
    for margin in (0.0, 0.125):
        weak = WeakConfig(labels="scribbles", method="random_walker_litemedsam", walker_box_margin=margin)
        stub = StubSegmenter(follow_box=True)
        targets = build_weak_targets(cases, annotations, images, weak=weak, num_classes=3, segmenter=stub)
        assert stub.encoded == 2 and torch.all(targets.weight[targets.label != IGNORE] == 1)
        assert torch.equal(targets.label[stroked], strokes[stroked])  # the expert's strokes win
        foreground[margin] = int(((targets.label > 0) & (targets.label != IGNORE) & ~stroked).sum())
    assert foreground[0.125] > foreground[0.0] > 0  # the stub draws each box: wider boxes, larger objects


def test_scribbles_through_litemedsam_train_on_strokes_then_on_prompted_masks(
    tmp_path: Path, disc_dataset: Dataset
) -> None:
    dataset = dataclasses.replace(disc_dataset, cases=disc_dataset.cases[:8])
    weak = WeakConfig(labels="scribbles", method="litemedsam")
    stub = StubSegmenter(follow_box=True)
    result = train_weak(dataset, TINY, weak, tmp_path / "run", segmenter=stub)
    assert (tmp_path / "run" / "round0" / "model.pt").exists() and result.run_dir == tmp_path / "run"
    assert stub.encoded > 0  # the refinement round prompted the foundation model


def test_weak_bench_reuses_finished_runs_and_redoes_changed_ones(tmp_path: Path, disc_dataset: Dataset) -> None:
    out, lines = tmp_path / "weak.json", []
    first = bench_weak(disc_dataset, out, kinds=("boxes",), config=TINY, log=lines.append)
    assert [r["labels"] for r in first["rows"]] == ["full", "boxes"] and not any("reused" in x for x in lines)
    lines.clear()
    again = bench_weak(disc_dataset, out, kinds=("boxes",), config=TINY, log=lines.append)
    assert sum("reused" in x for x in lines) == 2 and again["rows"] == first["rows"]
    lines.clear()
    no_crf = {"crf_weight": 0.0}
    changed = bench_weak(disc_dataset, out, kinds=("boxes",), config=TINY, weak_options=no_crf, log=lines.append)
    assert [x for x in lines if "reused" in x] == ["full: finished before, reused"]
    assert changed["rows"][0] == first["rows"][0]
    (tmp_path / "weak-runs" / "boxes-tightness" / "metrics.json").unlink()  # as if interrupted in that run
    lines.clear()
    bench_weak(disc_dataset, out, kinds=("boxes",), config=TINY, weak_options=no_crf, log=lines.append)
    assert "boxes/tightness: training" in lines


def test_simulated_annotations_replay_by_seed_and_read_from_files(tmp_path: Path, disc_dataset: Dataset) -> None:
    cases = disc_dataset.cases[:3]
    weak = WeakConfig(labels="scribbles")
    first = weak_annotations(cases, weak, num_classes=3, seed=4)
    second = weak_annotations(list(reversed(cases)), weak, num_classes=3, seed=4)  # order does not matter
    other = weak_annotations(cases, weak, num_classes=3, seed=5)
    for case in cases:
        a, b = first[case.case_id], second[case.case_id]
        assert isinstance(a, Scribbles) and isinstance(b, Scribbles) and np.array_equal(a.label, b.label)
    assert any(not np.array_equal(first[c.case_id].label, other[c.case_id].label) for c in cases)  # type: ignore[union-attr]

    path = tmp_path / "boxes.json"
    write_annotations_json(path, {"disc000": {"boxes": Boxes((Box(xmin=1, ymin=2, xmax=9, ymax=9, label=1),))}})
    read = weak_annotations(cases, WeakConfig(labels="boxes", source=str(path)), num_classes=3, seed=0)
    assert set(read) == {"disc000"} and isinstance(read["disc000"], Boxes)
    with pytest.raises(InputError, match="dataset carries only boxes and tags"):
        weak_annotations(cases, WeakConfig(labels="scribbles", source="dataset"), num_classes=3, seed=0)


# ------------------------------------------------------------------------------------------ objectives


def test_complete_scribbles_and_pseudo_labels_equal_full_supervision() -> None:
    logits, target = random_logits(), random_target()
    full = dice_ce_loss(logits, target)
    for kind in ("scribbles", "pseudo"):
        weak = WeakConfig(labels=kind, crf_weight=0.0, source="x" if kind == "pseudo" else "simulate")
        assert torch.allclose(weak_loss(logits, batch_of(target), weak=weak), full)


def test_complete_partial_labels_equal_full_supervision() -> None:
    logits, target = random_logits(), random_target()
    weak = WeakConfig(labels="partial", exclusion_weight=0.0)
    assert torch.allclose(weak_loss(logits, batch_of(target), weak=weak), dice_ce_loss(logits, target))
    annotated = torch.ones(B, C, dtype=torch.bool)
    assert torch.allclose(marginal_dice_loss(logits, target, annotated), dice_loss(logits, target))


def test_complete_points_equal_cross_entropy() -> None:
    logits, target = random_logits(), random_target()
    weak = WeakConfig(labels="points", crf_weight=0.0, size_weight=0.0)
    assert torch.allclose(weak_loss(logits, batch_of(target), weak=weak), F.cross_entropy(logits, target))


def test_marginal_dice_ignores_unannotated_classes() -> None:
    logits = random_logits()
    target = random_target()
    target[0][target[0] == 2] = 0  # image 0 does not annotate class 2
    annotated = torch.tensor([[True, True, False], [True, True, True]])
    # predicting class 2 in image 0 is not penalised: the loss equals Dice on the merged probabilities
    probs = torch.softmax(logits, dim=1)
    merged = probs.clone()
    merged[0, 0] += merged[0, 2]
    merged[0, 2] = 0
    one_hot = F.one_hot(target, C).permute(0, 3, 1, 2).double()
    inter, volume = (merged * one_hot).sum((0, 2, 3)), (merged + one_hot).sum((0, 2, 3))
    expected = (1 - (2 * inter + 1e-5) / (volume + 1e-5))[1:].mean()
    assert torch.allclose(marginal_dice_loss(logits, target, annotated), expected)


def test_weighted_partial_cross_entropy() -> None:
    logits, target = random_logits(), random_target()
    ones = torch.ones(B, S, S, dtype=torch.float64)
    assert torch.allclose(weighted_partial_cross_entropy(logits, target, ones), partial_cross_entropy(logits, target))
    weight = torch.rand(B, S, S, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    per_pixel = F.cross_entropy(logits, target, reduction="none")
    assert torch.allclose(weighted_partial_cross_entropy(logits, target, weight), (weight * per_pixel).mean())


def test_box_objective_prefers_the_box_and_has_gradients() -> None:
    target = torch.zeros(1, 12, 12, dtype=torch.long)
    target[0, 3:8, 2:9] = 1
    boxes = [[Box(xmin=2, ymin=3, xmax=9, ymax=8, label=1)]]
    good = (F.one_hot(target, 2).permute(0, 3, 1, 2).double() * 8).requires_grad_()
    bad = (F.one_hot(1 - target, 2).permute(0, 3, 1, 2).double() * 8).requires_grad_()
    weak = WeakConfig(labels="boxes", crf_weight=0.1, self_training_weight=1.0, self_training_start=0)
    batch = batch_of(torch.full_like(target, IGNORE), boxes=boxes)
    good_loss = weak_loss(good, batch, weak=weak, epoch=2)
    bad_loss = weak_loss(bad, batch, weak=weak, epoch=2)
    assert good_loss < bad_loss
    bad_loss.backward()
    assert bad.grad is not None and torch.isfinite(bad.grad).all() and bad.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------ training runs

RUNS = [
    ("full", ""),
    ("boxes", ""),
    ("points", ""),
    ("scribbles", ""),
    ("tags", ""),
    ("partial", ""),
    ("pseudo", ""),
]


@pytest.mark.parametrize(("kind", "method"), RUNS, ids=[k for k, _ in RUNS])
def test_weak_training_saves_a_loadable_run(tmp_path: Path, disc_dataset: Dataset, kind: str, method: str) -> None:
    dataset = dataclasses.replace(disc_dataset, cases=disc_dataset.cases[:8])
    source = "simulate"
    if kind == "pseudo":
        source = str(tmp_path / "pseudo")
        write_pseudo_labels(source, {c.case_id: c.label for c in dataset.cases[:6]}, confidence={"disc000": 0.5})
    weak = WeakConfig(labels=kind, method=method, source=source, cam_epochs=1)
    run = tmp_path / "run"
    progress: list[dict] = []
    result = train_weak(dataset, TINY, weak, run, progress=progress.append)
    assert result.epochs_run == 2
    for name in ("config.json", WEAK_CONFIG_FILE, "model.pt", "checkpoint.pt", "log.jsonl", "metrics.json"):
        assert (run / name).is_file(), name
    assert load_config(run / "config.json") == TINY and load_weak_config(run / WEAK_CONFIG_FILE) == weak
    model = SegmentationModel.load(run)
    prediction = model.predict([dataset.cases[0].image])[0]
    assert prediction.shape == (48, 48) and prediction.max() < 3
    rounds = weak.refine_rounds if kind == "tags" else 0
    assert len(progress) == 2 * (rounds + 1)
    if kind == "tags":
        assert (run / "round0" / "model.pt").is_file()
    split = json.loads((run / "split.json").read_text())
    if kind == "pseudo":
        assert set(split["train"]) <= {c.case_id for c in dataset.cases[:6]}


def test_weak_training_is_deterministic_and_resumes(tmp_path: Path, disc_dataset: Dataset) -> None:
    dataset = dataclasses.replace(disc_dataset, cases=disc_dataset.cases[:8])
    weak = WeakConfig(labels="scribbles")
    train_weak(dataset, TINY, weak, tmp_path / "a")
    train_weak(dataset, TINY, weak, tmp_path / "b")
    losses = [
        [json.loads(line)["train_loss"] for line in (tmp_path / r / "log.jsonl").read_text().splitlines()]
        for r in ("a", "b")
    ]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)

    with pytest.raises(InputError, match="already holds files"):
        train_weak(dataset, TINY, weak, tmp_path / "a")
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    (tmp_path / "a" / "config.json").write_text(json.dumps({**config, "epochs": 3}))
    resumed = train_weak(dataset, TINY, weak, tmp_path / "a", resume=True)
    assert resumed.epochs_run == 3
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    with pytest.raises(InputError, match="nothing to resume"):
        train_weak(dataset, TINY, weak, tmp_path / "none", resume=True)


def test_training_without_any_annotation_fails_clearly(tmp_path: Path, disc_dataset: Dataset) -> None:
    dataset = dataclasses.replace(disc_dataset, cases=disc_dataset.cases[:8])
    with pytest.raises(InputError, match="no training case has boxes annotations"):
        train_weak(dataset, TINY, WeakConfig(labels="boxes", source="dataset"), tmp_path / "run")
    unlabelled = [dataclasses.replace(c, label=None) for c in dataset.cases]
    annotations = {c.case_id: Points((Point(24, 24, 1), Point(2, 2, 0))) for c in unlabelled}
    # without full masks anywhere: trains on the given annotations, keeps the last epoch
    result = train_weak(
        dataclasses.replace(dataset, cases=unlabelled),
        TINY,
        WeakConfig(labels="points"),
        tmp_path / "points",
        annotations=annotations,
    )
    assert result.epochs_run == 2 and (tmp_path / "points" / "model.pt").is_file()
    assert json.loads((tmp_path / "points" / "metrics.json").read_text())["val"] == {}


def test_format_weak_table() -> None:
    report = {
        "dataset": {"root": "/data/hc18", "format": "hc18"},
        "rows": [
            {
                "labels": "full",
                "method": "dice_ce",
                "dice": 0.9,
                "dice_percent_of_full": 100.0,
                "seconds_per_image": 40.0,
            },
            {
                "labels": "boxes",
                "method": "tightness",
                "dice": 0.88,
                "dice_percent_of_full": 97.7777,
                "seconds_per_image": 7.0,
            },
        ],
    }
    table = format_weak_table(report).splitlines()
    assert table[0].startswith("| dataset | labels") and len(table) == 4
    assert table[3] == "| hc18 | boxes | tightness | 0.8800 | 97.8 | 7.0 |"
