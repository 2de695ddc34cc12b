"""Box fitting: sides a mask does not reach are widened, within bounds, and undone when the model grows unsure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from frugalseg.data.case import Box, Case
from frugalseg.foundation import LiteMedSAM, LiteMedSAMSegmenter, Prompts
from frugalseg.foundation.box_fit import GAP_TOLERANCE, MAX_WIDENING, fit_boxes, side_gaps, widen_boxes
from frugalseg.foundation.decoder_file import load_finetuned
from frugalseg.foundation.finetune import FinetuneConfig, finetune_decoder
from frugalseg.foundation.prompting import jitter_prompts, prompts_from_boxes
from frugalseg.foundation.prompts import Embedding

FRAME = 256


def inset_decoder(inset: float, iou: float = 0.9, iou_per_pixel: float = 0.0):
    """A stand-in decoder filling each box moved in by ``inset`` pixels per side; its predicted IoU falls by
    ``iou_per_pixel`` for every pixel of box width."""

    def decode(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grid = torch.arange(float(FRAME))
        logits = torch.full((len(boxes), FRAME, FRAME), -10.0)
        for index, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
            cols = (grid >= x0 + inset) & (grid <= x1 - inset)
            rows = (grid >= y0 + inset) & (grid <= y1 - inset)
            logits[index][rows[:, None] & cols[None, :]] = 10.0
        return logits, iou - iou_per_pixel * (boxes[:, 2] - boxes[:, 0])

    return decode


def reach(logits: torch.Tensor) -> torch.Tensor:
    """``(N, 4)`` first column, first row, last column, last row of each mask."""
    masks = logits > 0
    columns, rows = masks.any(1).float(), masks.any(2).float()
    first = lambda present: present.argmax(1)  # noqa: E731
    last = lambda present: present.shape[1] - 1 - present.flip(1).argmax(1)  # noqa: E731
    return torch.stack([first(columns), first(rows), last(columns), last(rows)], dim=1).float()


BOXES = torch.tensor([[40.0, 50.0, 200.0, 150.0], [10.0, 10.0, 60.0, 40.0]])


def test_side_gaps_measure_each_side_and_mark_empty_masks() -> None:
    masks = torch.zeros(2, 100, 100, dtype=torch.bool)
    masks[0, 20:61, 10:81] = True  # columns 10..80, rows 20..60
    gaps = side_gaps(masks, torch.tensor([[5.0, 20.0, 90.0, 58.0], [0.0, 0.0, 9.0, 9.0]]))
    torch.testing.assert_close(gaps[0], torch.tensor([5.0, 0.0, 10.0, -2.0]))
    assert torch.isnan(gaps[1]).all()


def test_widen_boxes_moves_each_side_by_its_own_margin_and_clips_to_the_image() -> None:
    widened = widen_boxes(
        torch.tensor([[10.0, 10.0, 50.0, 40.0]]), torch.tensor([[3.0, 20.0, 1.0, 30.0]]), (60.0, 55.0)
    )
    torch.testing.assert_close(widened, torch.tensor([[7.0, 0.0, 51.0, 55.0]]))


def test_a_mask_inside_its_box_is_widened_until_it_reaches_every_side() -> None:
    logits, iou, _ = fit_boxes(
        inset_decoder(4.0), BOXES, margin=2.5, last=(255.0, 255.0), resized=(256, 256), image_size=FRAME
    )
    before, _ = inset_decoder(4.0)(widen_boxes(BOXES, 2.5, (255.0, 255.0)))
    assert (side_gaps(before > 0, BOXES) > GAP_TOLERANCE).all()  # the unfitted masks stop short
    gaps = side_gaps(logits > 0, BOXES)
    assert (gaps.abs() <= GAP_TOLERANCE).all(), gaps
    torch.testing.assert_close(iou, torch.full((2,), 0.9))


def test_widening_stops_at_its_limit_for_a_model_that_never_reaches_the_box() -> None:
    logits, _, decoded = fit_boxes(
        inset_decoder(30.0), BOXES, margin=2.5, last=(255.0, 255.0), resized=(256, 256), image_size=FRAME
    )
    size = (BOXES[:, 2:] - BOXES[:, :2]).repeat(1, 2)
    widest = 2.5 + MAX_WIDENING * size
    expected = reach(inset_decoder(30.0)(widen_boxes(BOXES, widest, (255.0, 255.0)))[0])
    torch.testing.assert_close(reach(logits), expected)
    # the boxes it decoded last: the widest for the first; the second box's mask is empty, so it is not widened
    torch.testing.assert_close(decoded[0], widen_boxes(BOXES, widest, (255.0, 255.0))[0])
    torch.testing.assert_close(decoded[1], widen_boxes(BOXES, 2.5, (255.0, 255.0))[1])


def test_a_widening_that_makes_the_model_unsure_is_undone() -> None:
    unsure = inset_decoder(4.0, iou_per_pixel=0.01)
    logits, iou, decoded = fit_boxes(
        unsure, BOXES, margin=2.5, last=(255.0, 255.0), resized=(256, 256), image_size=FRAME
    )
    first, first_iou = unsure(widen_boxes(BOXES, 2.5, (255.0, 255.0)))
    torch.testing.assert_close(logits, first)
    torch.testing.assert_close(iou, first_iou)
    torch.testing.assert_close(decoded, widen_boxes(BOXES, 2.5, (255.0, 255.0)))


def embedding_of(segmenter: LiteMedSAMSegmenter, size: tuple[int, int] = (128, 192)) -> Embedding:
    image = np.random.default_rng(0).integers(0, 255, size=size).astype(np.uint8)
    return segmenter.encode(image)


def test_segmenter_fits_box_only_prompts_and_leaves_clicks_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    segmenter = LiteMedSAMSegmenter(LiteMedSAM(seed=0), box_margin=2.5)
    embedding = embedding_of(segmenter)
    monkeypatch.setattr(
        segmenter.model,
        "decode_prepared",
        lambda image, boxes, **_: (inset_decoder(6.0)(boxes)[0][:, None], torch.ones(len(boxes), 1)),
    )
    boxes = Prompts(boxes=np.array([[30.0, 20.0, 150.0, 100.0]]))
    truth = np.zeros((128, 192), dtype=bool)
    truth[20:100, 30:150] = True

    def dice(fit: bool, prompts: Prompts) -> float:
        segmenter.fit_boxes = fit
        mask = segmenter.predict(embedding, prompts).masks[0].numpy()
        return float(2 * (mask & truth).sum() / (mask.sum() + truth.sum()))

    fitted, unfitted = dice(True, boxes), dice(False, boxes)
    assert fitted > 0.98 and fitted > unfitted + 0.03
    with_click = Prompts(boxes=boxes.boxes, points=np.array([[[90.0, 60.0]]]), point_labels=np.array([[1]]))
    assert dice(True, with_click) == dice(False, with_click)
    loose = Prompts(boxes=boxes.boxes, tight_boxes=False)
    assert dice(True, loose) == dice(False, loose) == unfitted
    jittered = jitter_prompts(loose, (128, 192), fraction=0.1, rng=np.random.default_rng(0))
    assert (
        not jittered.tight_boxes
        and prompts_from_boxes([Box(xmin=1, ymin=2, xmax=9, ymax=9)], (20, 20)).prompts.tight_boxes
    )


def test_a_fine_tuned_decoder_predicts_without_fitting_and_reloads_so(tmp_path: Path) -> None:
    segmenter = LiteMedSAMSegmenter(LiteMedSAM(seed=0))
    assert not segmenter.fit_boxes  # opt-in
    segmenter.fit_boxes = True
    square = np.zeros((64, 64), dtype=np.uint8)
    square[16:48, 20:44] = 1
    cases = [Case(case_id="sq", subject_id="s", image=square * 200, label=square)]
    finetune_decoder(segmenter, cases, tmp_path / "run", config=FinetuneConfig(steps=1, images_per_step=1))
    assert not segmenter.fit_boxes
    base = LiteMedSAMSegmenter(segmenter.model, weights_sha256=segmenter.weights_sha256, fit_boxes=True)
    assert not load_finetuned(tmp_path / "run", base=base).fit_boxes


def test_an_empty_mask_is_left_as_it_is() -> None:
    calls: list[int] = []

    def empty(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(len(boxes))
        return torch.full((len(boxes), FRAME, FRAME), -5.0), torch.full((len(boxes),), 0.2)

    logits, iou, _ = fit_boxes(empty, BOXES, margin=2.5, last=(255.0, 255.0), resized=(256, 256), image_size=FRAME)
    assert calls == [2] and (logits < 0).all() and torch.equal(iou, torch.full((2,), 0.2))
