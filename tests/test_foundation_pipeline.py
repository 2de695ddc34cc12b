"""The pipeline around the promptable segmenter: prompts from weak annotations, pseudo-labels with confidence,
decoder fine-tuning, and the fast encoder path.

Tests use stub segmenters (masks known analytically) or a randomly initialised LiteMedSAM; the tests needing the
pretrained weights skip when ``frugalseg weights fetch litemedsam`` has not been run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import StubSegmenter
from frugalseg.annotations import Boxes, Point, Points, Scribbles, Tags
from frugalseg.data.case import IGNORE, Box, Case, Dataset
from frugalseg.data.images import read_mask
from frugalseg.engine.config import TrainConfig
from frugalseg.engine.foundation_bench import bench_foundation
from frugalseg.engine.foundation_student import pseudo_scores
from frugalseg.errors import InputError
from frugalseg.foundation import LiteMedSAM, LiteMedSAMSegmenter, MaskPrediction, Prompts
from frugalseg.foundation import litemedsam_network as litemedsam_module
from frugalseg.foundation.decoder_file import load_finetuned
from frugalseg.foundation.finetune import FinetuneConfig, calibrate_box_margin, finetune_decoder
from frugalseg.foundation.finetune_targets import dice_bce_loss, mask_to_model_frame, object_targets
from frugalseg.foundation.preprocess import image_to_model_input
from frugalseg.foundation.prompting import (
    grow_box,
    ivus_label_map,
    ivus_prompts,
    jitter_boxes,
    prompts_from_annotation,
    prompts_from_boxes,
    prompts_from_points,
    prompts_from_scribbles,
    rowcol_to_xy,
)
from frugalseg.foundation.pseudolabel import load_pseudolabels, pseudolabel_dataset
from frugalseg.foundation.pseudomask import combine_by_class, combine_confidence, prompt_stability, pseudolabel_case
from frugalseg.foundation.tiny_vit import TinyViT
from frugalseg.foundation.tiny_vit_fast import encode_fast
from frugalseg.foundation.zoom import segment_zoomed, zoom_crops, zoom_window

H, W = 40, 60

# ------------------------------------------------------------------------------------------------ stubs


def prediction_from(masks: np.ndarray, logits: np.ndarray | None = None) -> MaskPrediction:
    mask = torch.from_numpy(np.asarray(masks, dtype=bool))
    values = torch.where(mask, 1.0, -1.0) if logits is None else torch.from_numpy(np.asarray(logits, np.float32))
    return MaskPrediction(masks=mask, scores=torch.ones(mask.shape[0]), logits=values)


def box_mask(box: tuple[int, int, int, int], shape: tuple[int, int] = (H, W)) -> np.ndarray:
    x0, y0, x1, y1 = box
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


# ------------------------------------------------------------------------------------------- prompting


def test_rowcol_to_xy_swaps_and_rounds_to_the_named_pixel() -> None:
    xy = rowcol_to_xy([Point(10, 3), Point(2.5, 7.4), Point(0, 0)])
    np.testing.assert_array_equal(xy, [[3, 10], [7, 3], [0, 0]])  # row 2.5 rounds half up to 3
    np.testing.assert_array_equal(rowcol_to_xy(np.array([[[5.0, 9.0]]])), [[[9.0, 5.0]]])


def test_boxes_pass_unchanged_and_are_clipped_to_the_image() -> None:
    boxes = Boxes((Box(xmin=2, ymin=3, xmax=20, ymax=30, label=1), Box(xmin=-4, ymin=5, xmax=70, ymax=45, label=2)))
    objects = prompts_from_boxes(boxes, (H, W))
    assert objects.classes == (1, 2)
    assert objects.prompts.boxes is not None
    np.testing.assert_array_equal(objects.prompts.boxes, [[2, 3, 20, 30], [0, 5, W, H]])
    with pytest.raises(InputError, match="no box"):
        prompts_from_boxes(Boxes(()), (H, W))


def test_points_give_a_padded_box_per_class_and_the_clicks_in_xy() -> None:
    clicks = Points((Point(10, 20, 1), Point(30, 40, 1), Point(5, 50, 2), Point(35, 5, 0)))
    objects = prompts_from_points(clicks, (H, W), padding=0.1, min_padding=3.0)
    assert objects.classes == (1, 2)
    prompts = objects.prompts
    assert prompts.boxes is not None and prompts.points is not None and prompts.point_labels is not None
    # class 1: tight box x 20..40, y 10..30 -> (20, 10, 41, 31); padding max(3, 0.1 * 21) = 3 each side
    np.testing.assert_allclose(prompts.boxes[0], [17, 7, 44, 34])
    # class 2: one click at x=50, y=5 -> (50, 5, 51, 6) grown by 3, clipped at the top
    np.testing.assert_allclose(prompts.boxes[1], [47, 2, 54, 9])
    # object 0: its two clicks (label 1), then class 2's click and the negative click in input order (label 0)
    np.testing.assert_array_equal(prompts.points[0], [[20, 10], [40, 30], [50, 5], [5, 35]])
    np.testing.assert_array_equal(prompts.point_labels[0], [1, 1, 0, 0])
    np.testing.assert_array_equal(prompts.point_labels[1], [1, 0, 0, 0])  # class 1's clicks are background here
    only = prompts_from_points(clicks, (H, W), mode="points", other_classes_negative=False).prompts
    assert only.boxes is None and only.point_labels is not None
    np.testing.assert_array_equal(only.point_labels[0], [1, 1, 0])
    np.testing.assert_array_equal(only.point_labels[1], [1, 0, -1])  # padded to K = 3


def test_points_outside_the_image_or_without_a_positive_click_are_refused() -> None:
    with pytest.raises(InputError, match="outside"):
        prompts_from_points(Points((Point(H, 3, 1),)), (H, W))
    with pytest.raises(InputError, match="no positive click"):
        prompts_from_points(Points((Point(3, 3, 0),)), (H, W))


def test_scribbles_give_the_scribble_box_and_seeded_points_on_it() -> None:
    label = np.full((H, W), IGNORE, dtype=np.uint8)
    label[10, 5:25] = 1  # a horizontal stroke of class 1: x 5..24, y 10
    label[30:36, 40] = 2  # a vertical stroke of class 2: x 40, y 30..35
    label[2, 2:8] = 0  # background stroke
    objects = prompts_from_scribbles(Scribbles(label), points_per_object=3, negatives=2, padding=0.0, seed=5)
    prompts = objects.prompts
    assert objects.classes == (1, 2)
    assert prompts.boxes is not None and prompts.points is not None and prompts.point_labels is not None
    np.testing.assert_array_equal(prompts.boxes, [[3, 8, 27, 13], [38, 28, 43, 38]])  # min_padding 2
    for index, c in enumerate((1, 2)):
        positive = prompts.points[index][prompts.point_labels[index] == 1].astype(int)
        negative = prompts.points[index][prompts.point_labels[index] == 0].astype(int)
        assert len(positive) == 3 and len(negative) == 2
        assert (label[positive[:, 1], positive[:, 0]] == c).all()  # (x, y) -> label[y, x]
        assert (label[negative[:, 1], negative[:, 0]] == 0).all()
    again = prompts_from_scribbles(Scribbles(label), points_per_object=3, negatives=2, padding=0.0, seed=5).prompts
    assert again.points is not None
    np.testing.assert_array_equal(again.points, prompts.points)


def test_ivus_boxes_and_wall_is_vessel_minus_lumen() -> None:
    boxes = Boxes((Box(xmin=20, ymin=10, xmax=40, ymax=30, label=1), Box(xmin=10, ymin=2, xmax=50, ymax=38, label=2)))
    assert ivus_prompts(boxes, (H, W)).classes == (1, 2)
    with pytest.raises(InputError, match="class 3"):
        ivus_prompts(Boxes((Box(xmin=0, ymin=0, xmax=5, ymax=5, label=3),)), (H, W))
    lumen, vessel = box_mask((20, 10, 40, 30)), box_mask((10, 2, 50, 38))
    label = ivus_label_map(lumen, vessel)
    assert (label[lumen] == 1).all()
    assert (label[vessel & ~lumen] == 2).all()
    assert (label[~vessel] == 0).all()


def test_annotation_dispatch_refuses_tags() -> None:
    with pytest.raises(InputError, match="tags"):
        prompts_from_annotation(Tags((1,)), (H, W))


def test_grow_and_jitter_boxes_stay_within_their_bounds() -> None:
    assert grow_box((10, 10, 20, 30), (H, W), padding=0.5) == (5, 0, 25, 40)
    boxes = np.array([[10.0, 10.0, 30.0, 20.0]])
    np.testing.assert_array_equal(jitter_boxes(boxes, (H, W), fraction=0.0, rng=np.random.default_rng(0)), boxes)
    moved = jitter_boxes(np.repeat(boxes, 200, 0), (H, W), fraction=0.1, rng=np.random.default_rng(1))
    limit = np.array([2.0, 1.0, 2.0, 1.0])  # 10% of width 20 and height 10
    assert (np.abs(moved - boxes) <= limit + 1e-9).all()
    assert (np.abs(moved - boxes).max(axis=0) > 0.8 * limit).all()


# ----------------------------------------------------------------------------------------- pseudolabel


def test_stability_is_one_for_a_deterministic_identical_mask() -> None:
    mask = torch.from_numpy(box_mask((5, 5, 20, 20)))[None]
    assert prompt_stability(mask, mask[None].repeat(4, 1, 1, 1))[0] == 1.0
    shifted = torch.from_numpy(box_mask((10, 5, 25, 20)))[None, None]  # IoU = 10*15 / (20*15) = 0.5
    assert prompt_stability(mask, shifted)[0] == pytest.approx(0.5)

    image = np.zeros((H, W), dtype=np.uint8)
    objects = prompts_from_boxes([Box(xmin=10, ymin=5, xmax=50, ymax=35, label=1)], (H, W))
    _, records = pseudolabel_case(StubSegmenter(follow_box=False), image, objects, rng=np.random.default_rng(0))
    assert records[0]["stability"] == 1.0
    assert records[0]["confidence"] == pytest.approx(np.sqrt(0.9))
    _, moved = pseudolabel_case(StubSegmenter(follow_box=True), image, objects, rng=np.random.default_rng(0))
    assert 0.5 < moved[0]["stability"] < 1.0


def test_confidence_is_the_geometric_mean() -> None:
    assert combine_confidence(0.64, 1.0) == pytest.approx(0.8)
    assert combine_confidence(1.2, 0.25) == pytest.approx(0.5)  # the predicted IoU is clipped to 1
    assert combine_confidence(0.7, None) == pytest.approx(0.7)


def test_overlapping_objects_go_to_the_larger_logit_and_dropped_ones_to_ignore() -> None:
    a, b, c = box_mask((0, 0, 30, 20)), box_mask((20, 10, 50, 30)), box_mask((40, 30, 60, 40))
    logits = np.stack([np.where(a, 2.0, -1.0), np.where(b, 3.0, -1.0), np.where(c, 1.0, -1.0)])
    prediction = prediction_from(np.stack([a, b, c]), logits)
    label = combine_by_class(prediction, [1, 2, 3], keep=np.array([True, True, False]))
    assert (label[a & ~b] == 1).all() and (label[b] == 2).all()  # the overlap has b's larger logit
    assert (label[c & ~b] == IGNORE).all()
    assert (label[~(a | b | c)] == 0).all()
    everything = combine_by_class(prediction, [1, 2, 3], keep=np.ones(3, bool))
    assert (everything[c & ~b] == 3).all()


def test_low_confidence_objects_are_dropped_or_down_weighted() -> None:
    image = np.zeros((H, W), dtype=np.uint8)
    objects = prompts_from_boxes([Box(xmin=10, ymin=5, xmax=50, ymax=35, label=1)], (H, W))
    unsure = StubSegmenter(follow_box=False, score=0.25)
    label, records = pseudolabel_case(unsure, image, objects, min_confidence=0.6, rng=np.random.default_rng(0))
    assert not records[0]["kept"] and records[0]["weight"] == 0.0
    assert (label[5:35, 10:50] == IGNORE).all() and (label[:5] == 0).all()  # the box region is unlabelled
    label, records = pseudolabel_case(
        unsure, image, objects, min_confidence=0.6, policy="weight", rng=np.random.default_rng(0)
    )
    assert records[0]["kept"] and records[0]["weight"] == pytest.approx(0.5)
    assert (label == IGNORE).sum() == 0 and (label == 1).any()


def tiny_cases() -> list[Case]:
    cases = []
    for index in range(2):
        rows, cols = np.mgrid[:H, :W]
        disc = np.hypot(rows - 20, cols - 25 - 8 * index) < 10
        image = np.where(disc, 200, 40).astype(np.uint8)
        cases.append(Case(case_id=f"c{index}", subject_id=f"s{index}", image=image, label=disc.astype(np.uint8)))
    return cases


@pytest.fixture(scope="module")
def random_segmenter() -> LiteMedSAMSegmenter:
    torch.manual_seed(0)
    return LiteMedSAMSegmenter(LiteMedSAM(seed=0))


def test_pseudolabel_dataset_writes_masks_and_confidence_and_resumes(
    random_segmenter: LiteMedSAMSegmenter, tmp_path: Path
) -> None:
    cases = tiny_cases()
    annotations = {
        "c0": {"boxes": Boxes((Box(xmin=15, ymin=10, xmax=36, ymax=31, label=1),))},
        "c1": Points((Point(20, 33, 1), Point(2, 2, 0))),
    }
    report = pseudolabel_dataset(
        random_segmenter, cases, annotations, out_dir=tmp_path, jitter_trials=2, min_confidence=0.0, seed=3
    )
    assert report.written == ("c0", "c1") and report.skipped == () and report.missing == ()
    for case in cases:
        mask = read_mask(tmp_path / "masks" / f"{case.case_id}.png", expected_shape=case.shape)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1, IGNORE}
        entry = json.loads((tmp_path / "confidence" / f"{case.case_id}.json").read_text())
        (record,) = entry["objects"]
        assert record["class"] == 1 and record["kept"]
        assert 0.0 <= record["stability"] <= 1.0 and np.isfinite(record["predicted_iou"])
        assert record["confidence"] == pytest.approx(combine_confidence(record["predicted_iou"], record["stability"]))
    assert json.loads((tmp_path / "confidence" / "c1.json").read_text())["annotation"] == "points"
    summary = json.loads((tmp_path / "pseudolabels.json").read_text())
    assert set(summary["cases"]) == {"c0", "c1"} and summary["weights_sha256"] == random_segmenter.weights_sha256

    before = (tmp_path / "masks" / "c0.png").stat().st_mtime_ns
    again = pseudolabel_dataset(random_segmenter, cases, annotations, out_dir=tmp_path, min_confidence=0.0, seed=3)
    assert again.written == () and again.skipped == ("c0", "c1")
    assert (tmp_path / "masks" / "c0.png").stat().st_mtime_ns == before
    (tmp_path / "confidence" / "c1.json").unlink()  # an interrupted case is redone
    redo = pseudolabel_dataset(random_segmenter, cases, annotations, out_dir=tmp_path, min_confidence=0.0, seed=3)
    assert redo.written == ("c1",) and redo.skipped == ("c0",)

    loaded = load_pseudolabels(cases, tmp_path)
    assert [c.case_id for c in loaded] == ["c0", "c1"] and all(c.label is not None for c in loaded)


def test_pseudolabel_dataset_reports_cases_without_annotation(tmp_path: Path) -> None:
    cases = tiny_cases()
    annotations = {"c0": Boxes((Box(xmin=15, ymin=10, xmax=36, ymax=31, label=1),))}
    report = pseudolabel_dataset(StubSegmenter(follow_box=True), cases, annotations, out_dir=tmp_path, seed=0)
    assert report.written == ("c0",) and report.missing == ("c1",)
    with pytest.raises(InputError, match="usable annotation"):
        pseudolabel_dataset(StubSegmenter(follow_box=True), cases, {}, out_dir=tmp_path / "none")
    with pytest.raises(InputError, match="no pseudo-mask"):
        load_pseudolabels(cases, tmp_path / "none")


# -------------------------------------------------------------------------------------------- finetune


def test_object_targets_split_components_and_ivus_vessel() -> None:
    label = np.zeros((H, W), dtype=np.uint8)
    label[2:10, 2:10] = 1
    label[20:30, 30:40] = 1
    label[12:18, 12:18] = 2
    label[0, 59] = 2  # below min_pixels
    objects = object_targets(label, min_pixels=4)
    assert [c for c, _ in objects] == [1, 1, 2]
    assert sorted(int(m.sum()) for _, m in objects) == [36, 64, 100]
    ring = np.zeros((H, W), dtype=np.uint8)
    ring[5:35, 5:35] = 2
    ring[10:30, 10:30] = 1
    ivus = object_targets(ring, ivus=True)
    assert [(c, int(m.sum())) for c, m in ivus] == [(1, 400), (2, 900)]


def test_mask_to_model_frame_and_loss_of_a_perfect_prediction() -> None:
    mask = box_mask((0, 0, 30, 20))  # the left half of the top half of a 40x60 image
    small = mask_to_model_frame(mask, (20, 30))
    assert small.shape == (20, 30) and small.sum() == 15 * 10
    target = small[None]
    perfect = torch.where(target > 0, 30.0, -30.0)
    assert float(dice_bce_loss(perfect, target)) < 1e-3
    assert float(dice_bce_loss(-perfect, target)) > 1.0


def test_finetune_reduces_the_loss_and_reloads_on_top_of_the_base(tmp_path: Path) -> None:
    torch.manual_seed(1)
    segmenter = LiteMedSAMSegmenter(LiteMedSAM(seed=0))
    config = FinetuneConfig(
        steps=6, lr=2e-3, images_per_step=1, box_jitter=0.05, box_margins=(0.0, 2.5, 5.0), log_every=3, seed=0
    )
    result = finetune_decoder(segmenter, tiny_cases(), tmp_path / "run", config=config)
    assert result.final_loss < result.initial_loss
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert result.box_margin == segmenter.box_margin == metrics["box_margin"]
    assert metrics["margin_dice"][str(result.box_margin)] == max(metrics["margin_dice"].values())
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"config.json", "decoder.pt", "metrics.json", "log.jsonl"}
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 2
    base = LiteMedSAMSegmenter(segmenter.model, weights_sha256=segmenter.weights_sha256, box_margin=9.0)
    loaded = load_finetuned(tmp_path / "run", base=base)
    assert loaded.box_margin == result.box_margin  # the run's margin, not the base's
    for name, value in segmenter.model.mask_decoder.state_dict().items():
        torch.testing.assert_close(loaded.model.mask_decoder.state_dict()[name], value)
    assert loaded.weights_sha256 == segmenter.weights_sha256  # same encoder: cached embeddings stay valid
    torch.manual_seed(2)
    other = LiteMedSAMSegmenter(LiteMedSAM(seed=0))
    with pytest.raises(InputError, match="fine-tuned from weights"):
        load_finetuned(tmp_path / "run", base=other)
    (tmp_path / "run" / "decoder.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="decoder"):
        load_finetuned(tmp_path / "run", base=segmenter)


def test_finetune_with_encoder_stages_trains_only_the_last_stages_and_changes_the_identity(tmp_path: Path) -> None:
    torch.manual_seed(1)
    segmenter = LiteMedSAMSegmenter(LiteMedSAM(seed=0))
    base_sha = segmenter.weights_sha256
    before = {name: value.clone() for name, value in segmenter.model.image_encoder.state_dict().items()}
    config = FinetuneConfig(steps=3, lr=2e-3, images_per_step=1, encoder_stages=1, log_every=3, seed=0)
    result = finetune_decoder(segmenter, tiny_cases(), tmp_path / "run", config=config)
    after = segmenter.model.image_encoder.state_dict()
    changed = {
        name.split(".")[0] + ("." + name.split(".")[1] if name.startswith("layers") else "")
        for name in before
        if not torch.equal(before[name], after[name])
    }
    assert changed == {"layers.3", "neck"}  # the last stage and the neck; stages 0-2 and the stem stay put
    assert all(p.requires_grad for p in segmenter.model.image_encoder.parameters())  # flags as they were
    assert segmenter.weights_sha256 != base_sha  # its embeddings differ from the base's: new cache keys
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["base_weights_sha256"] == base_sha and result.final_loss < result.initial_loss
    torch.manual_seed(1)
    base = LiteMedSAMSegmenter(LiteMedSAM(seed=0))
    assert base.weights_sha256 == base_sha
    loaded = load_finetuned(tmp_path / "run", base=base)
    assert loaded.weights_sha256 == segmenter.weights_sha256
    for name, value in after.items():
        torch.testing.assert_close(loaded.model.image_encoder.state_dict()[name], value)
    assert torch.equal(base.model.image_encoder.neck[0].weight, before["neck.0.weight"])  # the base is not touched
    with pytest.raises(InputError, match="encoder_stages"):
        FinetuneConfig(encoder_stages=5)


def test_tiny_vit_early_then_late_features_equal_the_forward_pass() -> None:
    torch.manual_seed(0)
    encoder = TinyViT().eval()
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        whole = encoder(x)
        for stage in (2,):
            torch.testing.assert_close(encoder.late_features(encoder.early_features(x, stage), stage), whole)


def shrinking_decoder(inset: float):
    """A stand-in for ``LiteMedSAM.decode`` that fills each box moved in by ``inset`` model pixels per side."""

    def decode(features: torch.Tensor, *, boxes: torch.Tensor, **_: object) -> tuple[torch.Tensor, torch.Tensor]:
        grid = torch.arange(256.0)
        logits = torch.full((len(boxes), 1, 256, 256), -10.0)
        for index, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
            cols = (grid >= x0 + inset) & (grid <= x1 - inset)
            rows = (grid >= y0 + inset) & (grid <= y1 - inset)
            logits[index, 0][rows[:, None] & cols[None, :]] = 10.0
        return logits, torch.ones(len(boxes), 1)

    return decode


def test_the_calibrated_margin_undoes_a_model_that_draws_inside_its_box(monkeypatch: pytest.MonkeyPatch) -> None:
    segmenter = LiteMedSAMSegmenter(LiteMedSAM(seed=0), box_margin=2.5)
    monkeypatch.setattr(segmenter.model, "decode", shrinking_decoder(5.0))
    square = np.zeros((256, 256), dtype=np.uint8)  # the model frame itself: boxes are not rescaled
    square[40:200, 60:180] = 1
    cases = [Case(case_id="sq", subject_id="s", image=square * 200, label=square)]
    scores = calibrate_box_margin(segmenter, cases, (7.5, 0.0, 5.0, 2.5))
    assert list(scores) == [0.0, 2.5, 5.0, 7.5]
    assert scores[5.0] > 0.99 and scores[0.0] < scores[2.5] < scores[5.0] > scores[7.5]
    assert segmenter.box_margin == 5.0
    assert calibrate_box_margin(segmenter, cases, ()) == {} and segmenter.box_margin == 5.0
    with pytest.raises(InputError, match="box_margins"):
        FinetuneConfig(box_margins=(2.5, -1.0))


# ------------------------------------------------------------------------------------------------ zoom


def test_zoom_window_is_a_centred_square_clipped_to_the_image_and_holds_the_box() -> None:
    assert zoom_window((20, 10, 30, 14), (40, 60), 1.5) == (slice(4, 20), slice(17, 33))  # side 15 around (25, 12)
    rows, cols = zoom_window((0, 0, 50, 38), (40, 60), 1.2)  # clipped at every side
    assert (rows.start, rows.stop, cols.start, cols.stop) == (0, 40, 0, 55)
    rows, cols = zoom_window((10, 5, 40, 35), (40, 60), 1.0)
    assert rows.start <= 5 and rows.stop >= 35 and cols.start <= 10 and cols.stop >= 40
    with pytest.raises(InputError, match="zoom context"):
        zoom_window((10, 5, 40, 35), (40, 60), 0.9)


def test_segment_zoomed_maps_each_crop_prediction_back_to_its_place() -> None:
    stub = StubSegmenter(follow_box=True)
    image = np.zeros((H, W), dtype=np.uint8)
    boxes = np.array([[20.0, 10.0, 30.0, 14.0], [0.0, 25.0, 8.0, 40.0]])
    prediction = segment_zoomed(stub, image, Prompts(boxes=boxes), context=1.5)
    assert prediction.masks.shape == (2, H, W) and stub.encoded == 2  # one crop per object
    for index, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
        np.testing.assert_array_equal(prediction.masks[index].numpy(), box_mask((x0, y0, x1, y1)))
    assert float(prediction.logits[0, 0, 0]) < 0  # outside the first object's window: background
    with pytest.raises(InputError, match="box"):
        segment_zoomed(stub, image, Prompts.from_points([[(5.0, 5.0)]], [[1]]), context=1.5)


def test_zoom_crops_hold_the_object_once_exactly_and_around_jittered_boxes() -> None:
    case = tiny_cases()[0]
    rows, cols = np.nonzero(case.label)
    box = np.array([[cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]], dtype=np.float64)
    crops = zoom_crops(case, box, context=1.5, views=3, jitter=0.1, rng=np.random.default_rng(0))
    assert len(crops) == 4 and len({crop.case_id for crop in crops}) == 4
    assert crops[0].label.sum() == case.label.sum()  # the exact window holds the whole object
    assert crops[0].image.shape == crops[0].label.shape == (29, 29)  # 1.5 x the disc's 19 px, rounded out
    assert all(crop.image.shape == crop.label.shape for crop in crops)
    assert len({crop.image.shape for crop in crops}) > 1  # jittered boxes move and resize the window


def test_finetune_with_zoom_records_it_and_pseudolabels_go_through_crops(tmp_path: Path) -> None:
    torch.manual_seed(1)
    segmenter = LiteMedSAMSegmenter(LiteMedSAM(seed=0))
    config = FinetuneConfig(steps=2, images_per_step=1, zoom=1.5, zoom_views=1, log_every=1, seed=0)
    finetune_decoder(segmenter, tiny_cases(), tmp_path / "run", config=config)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["zoom"] == 1.5
    loaded = load_finetuned(
        tmp_path / "run", base=LiteMedSAMSegmenter(segmenter.model, weights_sha256=segmenter.weights_sha256)
    )
    assert loaded.zoom == 1.5 and segmenter.zoom == 1.5
    with pytest.raises(InputError, match="zoom"):
        FinetuneConfig(zoom=0.5)
    stub = StubSegmenter(follow_box=True)
    stub.zoom = 1.5
    objects = prompts_from_boxes(Boxes([Box(xmin=20, ymin=10, xmax=30, ymax=14)]), (H, W))
    label, records = pseudolabel_case(
        stub, np.zeros((H, W), np.uint8), objects, jitter_trials=2, rng=np.random.default_rng(0)
    )
    assert stub.encoded == 3  # the prompt and two jittered copies, each from its own crop
    np.testing.assert_array_equal(label == 1, box_mask((20, 10, 30, 14)))
    assert records[0]["stability"] is not None


# ----------------------------------------------------------------------------------- fast encoder path


def randomise_batch_norms(module: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for bn in module.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            n = bn.num_features
            bn.weight.data = torch.rand(n, generator=generator) + 0.5
            bn.bias.data = torch.randn(n, generator=generator) * 0.1
            bn.running_mean = torch.randn(n, generator=generator) * 0.1
            bn.running_var = torch.rand(n, generator=generator) + 0.5


def small_encoder() -> TinyViT:
    """A TinyViT with every kind of stage (padded windows, stride-2 and stride-1 merging), randomised batch norms."""
    torch.manual_seed(0)
    encoder = TinyViT(
        embed_dims=(8, 16, 24, 32),
        depths=(2, 1, 2, 1),
        num_heads=(1, 2, 3, 4),
        window_sizes=(7, 7, 14, 7),
        out_channels=16,
    )
    randomise_batch_norms(encoder, seed=1)
    return encoder.eval()


@pytest.mark.parametrize("tile_rows", [1, 3, 64])
def test_fast_encoder_equals_the_reference_forward(tile_rows: int) -> None:
    encoder = small_encoder()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference = encoder(x)
        fast = encode_fast(encoder, x, tile_rows=tile_rows, chunk_tokens=100)
    assert fast.shape == reference.shape == (2, 16, 16, 16)
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="eval mode"):
        encode_fast(encoder.train(), x)


def test_model_uses_the_fast_path_only_without_autograd(monkeypatch: pytest.MonkeyPatch) -> None:
    model = LiteMedSAM(seed=0).eval()
    model.image_encoder = small_encoder()
    calls: list[int] = []
    original = litemedsam_module.encode_fast
    monkeypatch.setattr(litemedsam_module, "encode_fast", lambda *a, **k: calls.append(1) or original(*a, **k))
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        fast = model.encode_image(x)
    assert calls == [1]
    reference = model.encode_image(x)  # autograd on: the module's own forward
    assert calls == [1] and reference.requires_grad
    torch.testing.assert_close(fast, reference.detach(), atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------------------------------ real weights


@pytest.fixture(scope="module")
def pretrained() -> LiteMedSAMSegmenter:
    try:
        return LiteMedSAMSegmenter.from_cache()
    except InputError as error:
        pytest.skip(f"LiteMedSAM weights not cached ({error})")


def test_pretrained_pseudolabel_of_a_bright_disc_and_fast_logits(pretrained: LiteMedSAMSegmenter) -> None:
    rows, cols = np.mgrid[:120, :160]
    disc = np.hypot(rows - 60, cols - 70) < 30
    noise = np.random.default_rng(0).normal(0, 10, disc.shape)
    image = np.clip(np.where(disc, 190, 50) + noise, 0, 255).astype(np.uint8)
    objects = prompts_from_boxes([Box(xmin=38, ymin=28, xmax=103, ymax=93, label=1)], image.shape)
    label, records = pseudolabel_case(pretrained, image, objects, jitter_trials=2, rng=np.random.default_rng(0))
    dice = 2 * ((label == 1) & disc).sum() / ((label == 1).sum() + disc.sum())
    assert dice > 0.9
    assert records[0]["kept"] and records[0]["stability"] > 0.8

    x, _ = image_to_model_input(image)
    with torch.no_grad():
        fast = pretrained.model.encode_image(x)
    reference = pretrained.model.image_encoder(x).detach()
    torch.testing.assert_close(fast, reference, atol=1e-4, rtol=1e-4)
    boxes = torch.tensor([[38.0, 28.0, 102.0, 92.0]]) * (256 / 160)
    with torch.no_grad():
        fast_logits, _ = pretrained.model.decode(fast, boxes=boxes)
        reference_logits, _ = pretrained.model.decode(reference, boxes=boxes)
    assert float((fast_logits - reference_logits).abs().max()) < 1e-3


# ------------------------------------------------------------------------------------------------- bench


def rectangle_dataset(count: int = 10) -> Dataset:
    """Rectangles of class 1 (the box stub segments them exactly); the last case has no object."""
    cases = []
    for index in range(count):
        label = np.zeros((H, W), dtype=np.uint8)
        if index < count - 1:
            label[5 + index : 25 + index, 10 + 2 * index : 40 + index] = 1
        image = np.where(label == 1, 180, 60).astype(np.uint8)
        cases.append(Case(case_id=f"r{index}", subject_id=f"s{index}", image=image, label=label))
    return Dataset(cases=cases, class_names=["background", "box"], source_format="test", root="rectangles")


def test_bench_foundation_reports_dice_timing_and_a_student(tmp_path: Path) -> None:
    dataset = rectangle_dataset()
    stub = StubSegmenter(follow_box=True)
    student = TrainConfig(model="unet_small", size=32, epochs=1, batch_size=4, augment=False, flip_tta=False)
    report = bench_foundation(
        dataset, tmp_path / "fm.json", segmenter=stub, student=True, student_config=student, log=lambda _: None
    )
    saved = json.loads((tmp_path / "fm.json").read_text())
    assert saved["zero_shot"]["box"]["dice"] == pytest.approx(1.0)  # the stub returns the (tight) box itself
    assert 0.0 < saved["zero_shot"]["box_jitter"]["dice"] <= 1.0
    assert set(saved["zero_shot"]) == {"box", "box_jitter", "points", "points_box"}
    assert saved["pseudo"]["dice"] == pytest.approx(1.0) and saved["pseudo"]["num_cases"] == report["num_pseudo"]
    assert saved["timing"]["encode_s"] >= 0 and saved["timing"]["decode_s"] >= 0 and saved["timing"]["peak_rss_mb"] > 0
    assert saved["timing"]["cached_encode_s"] >= 0 and saved["timing"]["pass_speedup"] > 0
    assert 0.0 <= saved["student"]["dice"] <= 1.0 and saved["student"]["fraction_of_full"] is not None
    assert report["num_test"] + report["num_pseudo"] == len(dataset)
    empty = json.loads((tmp_path / "fm-pseudo" / "confidence" / "r9.json").read_text())
    assert empty["objects"] == [] or empty["case_id"] != "r9"
    fewer = bench_foundation(dataset, tmp_path / "few.json", segmenter=stub, max_pseudo=2, log=lambda _: None)
    assert fewer["num_pseudo"] == 2 and fewer["num_test"] == report["num_test"]


def test_pseudo_mask_dice_counts_false_positives_and_class_mix_ups() -> None:
    truth = np.zeros((10, 10), dtype=np.uint8)
    truth[2:6, 2:6] = 1  # 16 pixels
    over = truth.copy()
    over[6:10, 2:6] = 1  # 16 more pixels that are background
    swapped = truth * 2
    ignored = over.copy()
    ignored[6:10, 2:6] = IGNORE
    case = Case(case_id="a", subject_id="a", image=truth, label=truth)
    scores = [
        pseudo_scores([case], [Case(case_id="a", subject_id="a", image=truth, label=pseudo)])
        for pseudo in (over, swapped, ignored)
    ]
    assert scores[0]["dice"] == pytest.approx(2 * 16 / 48)  # over-segmentation lowers Dice
    assert scores[1]["dice"] == 0.0  # the right pixels under the wrong class are misses
    assert scores[2]["dice"] == pytest.approx(1.0) and scores[2]["ignored_pixel_fraction"] == pytest.approx(0.16)


def test_bench_foundation_scores_a_zoom_fine_tuned_decoder_on_crops(tmp_path: Path) -> None:
    torch.manual_seed(0)
    segmenter = LiteMedSAMSegmenter(LiteMedSAM(seed=0))
    tuning = FinetuneConfig(steps=1, images_per_step=1, zoom=1.5, zoom_views=0, log_every=1)
    report = bench_foundation(
        rectangle_dataset(6),
        tmp_path / "fm.json",
        segmenter=segmenter,
        finetune_k=2,
        finetune_config=tuning,
        log=lambda _: None,
    )
    finetuned = report["finetuned"]
    assert finetuned["zoom"] == 1.5 and finetuned["k"] == 2
    assert 0.0 <= finetuned["box"]["dice"] <= 1.0 and 0.0 <= finetuned["box_jitter"]["dice"] <= 1.0
    assert segmenter.zoom == 0.0  # the benchmark tunes a copy
