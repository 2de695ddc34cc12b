"""Ellipse shape prior: the fit recovers ellipses, extends objects past box cuts, refuses what is not one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.draw import ellipse as draw_ellipse

from frugalseg.foundation import LiteMedSAM, LiteMedSAMSegmenter, Prompts
from frugalseg.foundation.shape_prior import (
    EDGE_LOGIT,
    check_shape,
    ellipse_extent,
    ellipse_logits,
    ellipse_mask,
    fit_conic,
    fit_ellipses,
    outline,
    snapped_extent,
)

SHAPE = (200, 300)


def filled_ellipse(
    row: float, col: float, radii: tuple[float, float], rotation: float, shape: tuple[int, int] = SHAPE
) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    rows, cols = draw_ellipse(row, col, radii[0], radii[1], shape=shape, rotation=rotation)
    mask[rows, cols] = True
    return mask


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


HEAD_ELLIPSE = (100.0, 140.0, (60.0, 90.0), 0.4)  # centre row, column, radii, rotation
HEAD = filled_ellipse(*HEAD_ELLIPSE)
CUT_AT = 190  # a box whose right side is drawn inside the head
BOX = np.array([[30.0, 20.0, CUT_AT, 180.0]])  # inclusive xyxy


def test_the_fit_recovers_a_rotated_ellipse_from_its_outline() -> None:
    conic = fit_conic(outline(HEAD))
    assert conic is not None
    assert dice(ellipse_mask(conic, SHAPE), HEAD) > 0.99


@pytest.mark.parametrize(
    "ellipse", [HEAD_ELLIPSE, (20.0, 280.0, (50.0, 30.0), 1.1), (150.0, 60.0, (3.0, 1.5), 0.0)], ids=str
)
def test_the_ellipse_mask_is_every_pixel_centre_inside_the_conic(
    ellipse: tuple[float, float, tuple[float, float], float],
) -> None:
    """Evaluated over the ellipse's bounding box only, it equals the conic's sign over the whole grid (also for
    an ellipse running off the image and one a few pixels across)."""
    conic = fit_conic(outline(filled_ellipse(*ellipse)))
    assert conic is not None
    (a, b, c, d, e, f), centre, scale = conic
    rows, cols = np.mgrid[: SHAPE[0], : SHAPE[1]].astype(np.float64)
    u, v = (cols - centre[0]) / scale, (rows - centre[1]) / scale
    value = a * u * u + b * u * v + c * v * v + d * u + e * v + f
    inside = value * np.sign(value[round(ellipse[0]), round(ellipse[1])]) > 0
    assert inside.any()
    np.testing.assert_array_equal(ellipse_mask(conic, SHAPE), inside)


def test_the_outline_is_that_of_the_largest_component_in_image_coordinates() -> None:
    small = filled_ellipse(30.0, 250.0, (10.0, 12.0), 0.0)
    points = outline(HEAD | small)
    assert len(points) > 100
    assert dice(ellipse_mask(fit_conic(points), SHAPE), HEAD) > 0.99
    assert points[:, 0].min() == pytest.approx(np.flatnonzero(HEAD.any(0))[0] - 0.5)


def test_an_object_cut_by_its_box_is_carried_on_past_the_cut() -> None:
    cut = HEAD.copy()
    cut[:, CUT_AT + 1 :] = False
    assert dice(cut, HEAD) < 0.95
    restored = fit_ellipses(cut[None], BOX, tolerance=1.5)[0][0]
    assert dice(restored, HEAD) > 0.98
    fitted_to_the_cut_too = fit_ellipses(cut[None], None, tolerance=1.5)[0][0]
    assert dice(fitted_to_the_cut_too, HEAD) < dice(restored, HEAD) - 0.01


def test_what_no_ellipse_fits_keeps_its_mask() -> None:
    empty = np.zeros(SHAPE, dtype=bool)
    speck = np.zeros(SHAPE, dtype=bool)
    speck[50:52, 50:52] = True  # too few outline points
    ring = HEAD & ~filled_ellipse(100, 140, (50, 80), 0.4)  # its outer outline is an ellipse of twice its area
    masks = np.stack([empty, speck, ring])
    kept, agreement = fit_ellipses(masks, None, tolerance=1.0)
    np.testing.assert_array_equal(kept, masks)
    np.testing.assert_array_equal(agreement, 0.0)  # no ellipse, no agreement
    assert fit_conic(np.stack([np.arange(30.0), 2 * np.arange(30.0)], axis=1)) is None  # collinear


def test_ellipse_logits_keep_agreeing_pixels_and_move_the_others_across_zero() -> None:
    cut = HEAD.copy()
    cut[:, CUT_AT + 1 :] = False
    logits = torch.from_numpy(np.where(cut, 5.0, -5.0)).float()[None]
    shaped, agreement = ellipse_logits(logits, BOX, tolerance=1.5)
    restored, expected = fit_ellipses(cut[None], BOX, tolerance=1.5)
    torch.testing.assert_close(shaped > 0, torch.from_numpy(restored))
    assert agreement.item() == pytest.approx(dice(cut, restored[0])) and 0.9 < agreement.item() < 0.97
    assert expected[0] == pytest.approx(agreement.item())
    agree = (logits > 0) == torch.from_numpy(restored)
    torch.testing.assert_close(shaped[agree], logits[agree])
    assert torch.all(shaped[~agree].abs() == EDGE_LOGIT)


def test_the_segmenter_maps_its_decoded_boxes_to_the_image_for_the_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in decoder returns the head cut at the right side of each box it is given, in the model frame."""
    segmenter = LiteMedSAMSegmenter(LiteMedSAM(seed=0))
    to_model = 256 / max(SHAPE)  # the image fills the model frame's top 171 of 256 rows
    row, col, (radius_rows, radius_cols), rotation = HEAD_ELLIPSE
    scaled = (radius_rows * to_model, radius_cols * to_model)
    head = filled_ellipse(row * to_model, col * to_model, scaled, rotation, shape=(256, 256))

    def decode(image: object, boxes: torch.Tensor, **_: object) -> tuple[torch.Tensor, torch.Tensor]:
        logits = torch.full((len(boxes), 1, 256, 256), -10.0)
        for index, right in enumerate(boxes[:, 2].tolist()):
            logits[index, 0][torch.from_numpy(head & (np.arange(256) <= right)[None, :])] = 10.0
        return logits, torch.ones(len(boxes), 1)

    monkeypatch.setattr(segmenter.model, "decode_prepared", decode)
    embedding = segmenter.encode(np.zeros(SHAPE, dtype=np.uint8))
    prompts = Prompts(boxes=BOX + np.array([0.0, 0.0, 1.0, 1.0]))  # exclusive max
    plain = segmenter.predict(embedding, prompts).masks[0].numpy()
    segmenter.shape = "ellipse"
    shaped = segmenter.predict(embedding, prompts)
    assert dice(plain, HEAD) < 0.95
    assert dice(shaped.masks[0].numpy(), HEAD) > 0.97
    torch.testing.assert_close(shaped.masks, shaped.logits > 0)
    with pytest.raises(ValueError, match="shape"):
        LiteMedSAMSegmenter(LiteMedSAM(seed=0), shape="circle")


def test_box_slack_keeps_a_tight_box_and_widens_one_drawn_inside_the_head(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in decoder outlines the head inside a rounded version of each box it is given (as LiteMedSAM
    follows a box that cuts its object) and reports the box's width as its score, which names the box chosen."""
    to_model = 256 / max(SHAPE)
    head_rows, head_cols = (60.0, 90.0)
    head = filled_ellipse(100 * to_model, 140 * to_model, (head_rows * to_model, head_cols * to_model), 0.0, (256, 256))
    truth = filled_ellipse(100, 140, (head_rows, head_cols), 0.0)
    rows, cols = np.mgrid[:256, :256]

    def decode(image: object, boxes: torch.Tensor, **_: object) -> tuple[torch.Tensor, torch.Tensor]:
        logits = torch.full((len(boxes), 1, 256, 256), -10.0)
        for index, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
            across = np.abs((cols - (x0 + x1) / 2) / ((x1 - x0) / 2 + 0.5))
            down = np.abs((rows - (y0 + y1) / 2) / ((y1 - y0) / 2 + 0.5))
            logits[index, 0][torch.from_numpy(head & (across**4 + down**4 <= 1))] = 10.0
        return logits, (boxes[:, 2] - boxes[:, 0])[:, None]

    segmenter = LiteMedSAMSegmenter(LiteMedSAM(seed=0), shape="ellipse")
    monkeypatch.setattr(segmenter.model, "decode_prepared", decode)
    embedding = segmenter.encode(np.zeros(SHAPE, dtype=np.uint8))
    truth_rows, truth_cols = np.nonzero(truth)
    tight = np.array([[truth_cols.min(), truth_rows.min(), truth_cols.max() + 1, truth_rows.max() + 1]], dtype=float)
    width, height = tight[0, 2] - tight[0, 0], tight[0, 3] - tight[0, 1]
    inside = tight + np.array([0.1 * width, 0.1 * height, 0.0, 0.0])  # left and top sides cut the head
    for box, cut in ((tight, False), (inside, True)):
        given = segmenter.predict(embedding, Prompts(boxes=box))
        segmenter.box_slack = (0.05, 0.1)
        slackened = segmenter.predict(embedding, Prompts(boxes=box))
        segmenter.box_slack = ()
        if cut:
            assert dice(given.masks[0].numpy(), truth) < 0.99 < 0.995 < dice(slackened.masks[0].numpy(), truth)
            assert slackened.scores[0] > given.scores[0]  # decoded from a wider box
        else:
            torch.testing.assert_close(slackened.masks, given.masks)
            torch.testing.assert_close(slackened.scores, given.scores)


def test_sides_near_the_box_snap_onto_it_and_others_stay() -> None:
    box = np.array([100.0, 50.0, 200.0, 150.0])  # max exclusive: its outline is at 99.5 ... 199.5
    extent = np.array([102.0, 47.0, 190.0, 149.0])  # 2.5 px inside, 2.5 px past, 9.5 px inside, 0.5 px inside
    np.testing.assert_allclose(snapped_extent(extent, box, (0.03, 0.03)), [99.5, 49.5, 190.0, 149.5])
    np.testing.assert_allclose(snapped_extent(extent, box, (0.03, 0.0)), [99.5, 47.0, 190.0, 149.5])
    np.testing.assert_allclose(snapped_extent(extent, box, (0.1, 0.0)), [99.5, 47.0, 199.5, 149.5])
    np.testing.assert_allclose(snapped_extent(extent, box, (0.0, 0.0)), extent)


def test_a_snapped_ellipse_fills_its_tight_box() -> None:
    """The ellipse fitted to a head outlined a few pixels short of its box, snapped, spans the box exactly."""
    row, col, (radius_rows, radius_cols), rotation = HEAD_ELLIPSE
    short = filled_ellipse(row, col, (radius_rows - 3, radius_cols - 3), rotation)
    rows, cols = np.nonzero(HEAD)
    box = np.array([[cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]], dtype=float)
    plain, _ = fit_ellipses(short[None], None, tolerance=1.0)
    snapped, agreement = fit_ellipses(short[None], None, tolerance=1.0, snap_to=box, snap=(0.05, 0.0))
    assert dice(plain[0], HEAD) < 0.97 < 0.99 < dice(snapped[0], HEAD)
    snapped_rows, snapped_cols = np.nonzero(snapped[0])
    assert [snapped_cols.min(), snapped_rows.min(), snapped_cols.max() + 1, snapped_rows.max() + 1] == box[0].tolist()
    assert agreement[0] == pytest.approx(dice(short, plain[0]))  # the agreement is the unsnapped ellipse's
    conic = fit_conic(outline(short))
    assert conic is not None and ellipse_extent(conic) is not None


def test_the_segmenter_decodes_widened_boxes_and_snaps_back_to_the_given_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in decoder outlines the head inside each box it is given, 3 model pixels short of every side."""
    to_model = 256 / max(SHAPE)
    truth = filled_ellipse(100, 140, (60.0, 90.0), 0.0)
    rows, cols = np.mgrid[:256, :256]
    decoded: list[torch.Tensor] = []

    def decode(image: object, boxes: torch.Tensor, **_: object) -> tuple[torch.Tensor, torch.Tensor]:
        decoded.append(boxes.clone())
        logits = torch.full((len(boxes), 1, 256, 256), -10.0)
        for index, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
            across = ((cols - (x0 + x1) / 2) / ((x1 - x0) / 2 - 3)) ** 2
            down = ((rows - (y0 + y1) / 2) / ((y1 - y0) / 2 - 3)) ** 2
            logits[index, 0][torch.from_numpy(across + down <= 1)] = 10.0
        return logits, torch.ones(len(boxes), 1)

    segmenter = LiteMedSAMSegmenter(LiteMedSAM(seed=0), shape="ellipse", box_margin=0.0)
    monkeypatch.setattr(segmenter.model, "decode_prepared", decode)
    embedding = segmenter.encode(np.zeros(SHAPE, dtype=np.uint8))
    truth_rows, truth_cols = np.nonzero(truth)
    tight = np.array([[truth_cols.min(), truth_rows.min(), truth_cols.max() + 1, truth_rows.max() + 1]], dtype=float)
    as_fitted = segmenter.predict(embedding, Prompts(boxes=tight)).masks[0].numpy()
    segmenter.box_snap = (0.05, 0.0)
    snapped = segmenter.predict(embedding, Prompts(boxes=tight)).masks[0].numpy()
    assert dice(as_fitted, truth) < 0.98 < 0.99 < dice(snapped, truth)
    segmenter.box_widen, segmenter.box_snap = 0.1, (0.0, 0.12)  # 10% wider, minus 3 px: past the box, snapped in
    widened = segmenter.predict(embedding, Prompts(boxes=tight)).masks[0].numpy()
    size = (tight[0, 2] - tight[0, 0]) * to_model
    assert decoded[-1][0, 2] - decoded[-1][0, 0] == pytest.approx(1.2 * size, abs=1.5)
    assert dice(widened, truth) > 0.99
    segmenter.box_snap = (0.0, 0.0)
    assert dice(segmenter.predict(embedding, Prompts(boxes=tight)).masks[0].numpy(), truth) < 0.98  # too wide


def test_box_slack_needs_a_shape_and_fractions() -> None:
    check_shape("ellipse", (0.05, 0.1))
    for shape, slack, message in (
        ("none", (0.1,), "needs a shape"),
        ("ellipse", (0.0,), "fraction"),
        ("disc", (), "shape"),
    ):
        with pytest.raises(ValueError, match=message):
            check_shape(shape, slack)
    with pytest.raises(ValueError, match="needs a shape"):
        LiteMedSAMSegmenter(LiteMedSAM(seed=0), box_slack=(0.1,))
    with pytest.raises(ValueError, match="needs a shape"):
        LiteMedSAMSegmenter(LiteMedSAM(seed=0), box_snap=(0.03, 0.02))
    with pytest.raises(ValueError, match="two fractions"):
        check_shape("ellipse", box_snap=(0.03, 1.0))
    with pytest.raises(ValueError, match="box_widen"):
        LiteMedSAMSegmenter(LiteMedSAM(seed=0), box_widen=-0.1)
