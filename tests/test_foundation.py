"""The foundation-model backend: prompts, LiteMedSAM geometry and checkpoints, the embedding cache.

Without the real weights every test uses a randomly initialised LiteMedSAM of the same architecture; the
tests needing the pretrained weights skip when ``frugalseg weights fetch litemedsam`` has not been run.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from frugalseg.atomic import atomic_torch_save
from frugalseg.data.case import Box
from frugalseg.errors import InputError
from frugalseg.foundation import (
    CachedSegmenter,
    Embedding,
    EmbeddingCache,
    LiteMedSAM,
    LiteMedSAMSegmenter,
    PromptableSegmenter,
    Prompts,
)
from frugalseg.foundation.cache import embedding_key
from frugalseg.foundation.preprocess import (
    boxes_to_model_frame,
    image_to_model_input,
    logits_to_original,
    points_to_model_frame,
    resized_size,
)
from frugalseg.foundation.sam_decoder_fast import OUTSIDE_LOGIT, decode_fast

H, W = 200, 300  # a non-square image: the longest side (300) maps to 256


def real_data_root() -> Path:
    """``FRUGAL_DATA`` or ``../shared/data`` beside the repository."""
    return Path(os.environ.get("FRUGAL_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="module")
def model() -> LiteMedSAM:
    torch.manual_seed(0)
    return LiteMedSAM(seed=0).eval()


@pytest.fixture(scope="module")
def segmenter(model: LiteMedSAM) -> LiteMedSAMSegmenter:
    return LiteMedSAMSegmenter(model)


def random_embedding(size: tuple[int, int] = (H, W), *, seed: int = 0) -> Embedding:
    generator = torch.Generator().manual_seed(seed)
    return Embedding(
        features=torch.randn(1, 256, 64, 64, generator=generator),
        original_size=size,
        resized_size=resized_size(size),
        model_id="litemedsam",
    )


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def tight_box(mask: np.ndarray) -> list[int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]


# ---------------------------------------------------------------- architecture and checkpoints


def test_state_dict_has_the_checkpoint_layout(model: LiteMedSAM) -> None:
    state = model.state_dict()
    assert len(state) == 435  # the tensors of lite_medsam.pth
    expected = {
        "image_encoder.patch_embed.seq.0.c.weight": (32, 3, 1, 1),
        "image_encoder.layers.0.blocks.1.conv2.c.weight": (256, 1, 3, 3),
        "image_encoder.layers.1.blocks.0.attn.attention_biases": (4, 49),
        "image_encoder.layers.2.blocks.5.attn.attention_biases": (5, 196),
        "image_encoder.layers.2.downsample.conv2.c.weight": (320, 1, 3, 3),
        "image_encoder.layers.3.blocks.1.mlp.fc1.weight": (1280, 320),
        "image_encoder.neck.2.weight": (256, 256, 3, 3),
        "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix": (2, 128),
        "prompt_encoder.mask_downscaling.6.weight": (256, 16, 1, 1),
        "mask_decoder.transformer.layers.1.cross_attn_image_to_token.q_proj.weight": (128, 256),
        "mask_decoder.output_upscaling.3.weight": (64, 32, 2, 2),
        "mask_decoder.output_hypernetworks_mlps.3.layers.2.weight": (32, 256),
        "mask_decoder.iou_prediction_head.layers.2.weight": (4, 256),
    }
    assert {key: tuple(state[key].shape) for key in expected} == expected
    assert not any("attention_bias_idxs" in key for key in state)


def test_relative_position_index_is_the_absolute_offset(model: LiteMedSAM) -> None:
    attn = model.image_encoder.layers[1].blocks[0].attn
    idx = attn.attention_bias_idxs  # window 7: position p = row * 7 + col
    assert idx.shape == (49, 49)
    assert idx[0, 48] == 6 * 7 + 6 and idx[48, 0] == 6 * 7 + 6 and idx[10, 10] == 0
    assert idx[1 * 7 + 2, 4 * 7 + 0] == 3 * 7 + 2


def test_state_dict_round_trip(model: LiteMedSAM, tmp_path: Path) -> None:
    from frugalseg.weights import load_state_dict, sha256_file

    path = atomic_torch_save(tmp_path / "lite.pth", model.state_dict())
    loaded = LiteMedSAM.from_state_dict(load_state_dict(path, sha256=sha256_file(path)))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    features = random_embedding().features
    boxes = torch.tensor([[10.0, 20.0, 120.0, 90.0]])
    with torch.no_grad():
        assert torch.equal(model.decode(features, boxes=boxes)[0], loaded.decode(features, boxes=boxes)[0])


def test_state_dict_of_another_architecture_is_refused(model: LiteMedSAM) -> None:
    state = dict(model.state_dict())
    del state["mask_decoder.iou_token.weight"]
    with pytest.raises(InputError, match="does not match the LiteMedSAM architecture"):
        LiteMedSAM.from_state_dict(state)


def test_wrong_hash_or_corrupt_checkpoint_is_refused(model: LiteMedSAM, tmp_path: Path) -> None:
    path = atomic_torch_save(tmp_path / "lite.pth", model.state_dict())
    with pytest.raises(InputError, match="sha256"):
        LiteMedSAMSegmenter.from_checkpoint(path, sha256="0" * 64)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(path.read_bytes()[: 1 << 16])
    with pytest.raises(InputError, match="not a readable torch checkpoint"):
        LiteMedSAMSegmenter.from_checkpoint(corrupt, sha256=hashlib.sha256(corrupt.read_bytes()).hexdigest())


def test_missing_weights_say_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="run: frugalseg weights fetch litemedsam"):
        LiteMedSAMSegmenter.from_cache(cache=tmp_path)


def test_decoder_is_trainable_on_fixed_embeddings() -> None:
    torch.manual_seed(1)
    net = LiteMedSAM(seed=1)
    logits, iou = net.decode(random_embedding().features, boxes=torch.tensor([[10.0, 10.0, 100.0, 80.0]]))
    (logits.mean() + iou.mean()).backward()
    decoder = list(net.decoder_parameters())
    assert len(decoder) == len(list(net.prompt_encoder.parameters())) + len(list(net.mask_decoder.parameters()))
    assert net.mask_decoder.iou_token.weight.grad is not None
    assert net.prompt_encoder.point_embeddings[2].weight.grad is not None
    assert all(p.grad is None for p in net.image_encoder.parameters())


def test_channels_last_upscaling_equals_the_layers_it_reads(model: LiteMedSAM) -> None:
    decoder = model.mask_decoder  # its transposed convolutions have random weights and biases
    tokens = torch.randn(2, 8, 6, 256, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        reference = decoder.output_upscaling(tokens.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        fast = decoder.upscale(tokens)
    assert fast.shape == (2, 32, 24, 32)
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-4)


def test_decoder_attention_is_scaled_dot_product_over_heads(model: LiteMedSAM) -> None:
    attention = model.mask_decoder.transformer.final_attn_token_to_image  # 8 heads, internal width 128
    generator = torch.Generator().manual_seed(4)
    q, k = torch.randn(3, 7, 256, generator=generator), torch.randn(3, 50, 256, generator=generator)
    with torch.no_grad():
        heads = [p.reshape(3, -1, 8, 16).transpose(1, 2) for p in (attention.q_proj(q), attention.k_proj(k))]
        values = attention.v_proj(k).reshape(3, 50, 8, 16).transpose(1, 2)
        weights = torch.softmax(heads[0] @ heads[1].transpose(-2, -1) / 4.0, dim=-1)
        expected = attention.out_proj((weights @ values).transpose(1, 2).reshape(3, 7, 128))
        torch.testing.assert_close(attention(q, k, k), expected, atol=1e-5, rtol=1e-4)


PROMPT_BOXES = torch.tensor([[10.0, 20.0, 120.0, 90.0], [0.0, 0.0, 50.0, 60.0], [100.0, 30.0, 250.0, 160.0]])
PROMPT_POINTS = torch.tensor(
    [[[30.0, 40.0], [90.0, 60.0]], [[5.0, 5.0], [40.0, 50.0]], [[120.0, 100.0], [200.0, 40.0]]]
)
PROMPT_LABELS = torch.tensor([[1, 0], [1, 1], [0, 1]])


@pytest.mark.parametrize("kind", ["boxes", "points", "points_and_boxes"])
def test_prepared_decoding_equals_the_decoder(model: LiteMedSAM, kind: str) -> None:
    points = PROMPT_POINTS if "points" in kind else None
    kwargs = {
        "boxes": PROMPT_BOXES if "boxes" in kind else None,
        "points": points,
        "point_labels": PROMPT_LABELS if points is not None else None,
    }
    features = random_embedding().features
    with torch.no_grad():
        expected, expected_iou = model.decode(features, **kwargs)
    logits, iou = model.decode_prepared(model.prepare(features), **kwargs)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(iou, expected_iou, atol=1e-5, rtol=1e-4)


def test_prepared_decoding_gives_the_multimask_outputs(model: LiteMedSAM) -> None:
    features = random_embedding().features
    with torch.no_grad():
        sparse, dense = model.prompt_encoder(boxes=PROMPT_BOXES)
        expected, expected_iou = model.mask_decoder(
            features, model.prompt_encoder.get_dense_pe(), sparse, dense, multimask_output=True
        )
        logits, iou = decode_fast(model.mask_decoder, model.prepare(features), sparse, multimask_output=True)
    assert logits.shape == (3, 3, 256, 256)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(iou, expected_iou, atol=1e-5, rtol=1e-4)


def test_prepared_decoding_leaves_the_padding_of_the_frame_undecoded(model: LiteMedSAM) -> None:
    image = model.prepare(random_embedding().features)
    whole, _ = model.decode_prepared(image, boxes=PROMPT_BOXES)
    part, _ = model.decode_prepared(image, boxes=PROMPT_BOXES, valid=(171, 256))  # H x W = 200 x 300
    torch.testing.assert_close(part[..., :172, :], whole[..., :172, :], atol=1e-5, rtol=1e-5)  # whole cells
    assert (part[..., 172:, :] == OUTSIDE_LOGIT).all()
    assert not (whole[..., 172:, :] == OUTSIDE_LOGIT).any()


def test_multimask_output_gives_the_three_other_tokens(model: LiteMedSAM) -> None:
    features, boxes = random_embedding().features, torch.tensor([[10.0, 20.0, 120.0, 90.0], [0.0, 0.0, 50.0, 60.0]])
    with torch.no_grad():
        single, single_iou = model.decode(features, boxes=boxes)
        several, several_iou = model.decode(features, boxes=boxes, multimask_output=True)
    assert single.shape == (2, 1, 256, 256) and several.shape == (2, 3, 256, 256)
    assert single_iou.shape == (2, 1) and several_iou.shape == (2, 3)
    assert not torch.allclose(single[:, 0], several[:, 0])


# ---------------------------------------------------------------- geometry


def test_resized_size_keeps_the_aspect_ratio() -> None:
    assert resized_size((H, W)) == (round(H * 256 / W), 256) == (171, 256)
    assert resized_size((W, H)) == (256, 171)
    assert resized_size((128, 64)) == (256, 128)


def test_image_to_model_input_resizes_normalises_and_pads() -> None:
    image = np.full((H, W), 100, np.uint8)
    image[:, W // 2 :] = 220  # left half dark, right half bright
    x, size = image_to_model_input(image)
    assert x.shape == (1, 3, 256, 256) and size == (171, 256)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])  # grey -> 3 equal channels
    assert x.min() == 0 and x.max() == 1  # min-max scaled
    assert torch.all(x[..., 171:, :] == 0)  # padding at the bottom
    assert torch.allclose(x[0, 0, :171, :120], torch.zeros(171, 120), atol=1e-5)
    assert torch.allclose(x[0, 0, :171, 136:], torch.ones(171, 120), atol=1e-5)


def test_image_to_model_input_rejects_bad_images() -> None:
    with pytest.raises(InputError, match="expected"):
        image_to_model_input(np.zeros((2, 3, 4, 5)))
    with pytest.raises(InputError, match=r"non-finite|NaN"):
        image_to_model_input(np.full((8, 8), np.nan, np.float32))


def test_boxes_and_points_map_to_the_256_frame() -> None:
    scale = 256 / W
    boxes = boxes_to_model_frame(np.array([[30.0, 60.0, 150.0, 180.0]]), (H, W))
    expected = torch.tensor([[30.0, 60.0, 149.0, 179.0]]) * scale  # max exclusive -> last pixel, scaled
    assert torch.allclose(boxes, expected)
    tall = boxes_to_model_frame(np.array([[30.0, 60.0, 150.0, 180.0]]), (W, H))  # same scale: max side 300
    assert torch.allclose(tall, expected)
    widened = boxes_to_model_frame(np.array([[0.0, 60.0, W, 180.0]]), (H, W), margin=2.5)
    last_x = (W - 1) * scale
    assert torch.allclose(widened, torch.tensor([[0.0, 60.0 * scale - 2.5, last_x, 179.0 * scale + 2.5]]))
    points = points_to_model_frame(np.array([[[150.0, 100.0]]]), (H, W))
    assert torch.allclose(points, torch.tensor([[[150.0, 100.0]]]) * scale)


@pytest.mark.parametrize("frame", [256, 64])
def test_low_res_logits_are_cropped_and_resized_to_the_original(frame: int) -> None:
    # positive logits on model-frame rows 64..127 and columns 128..191: original rows 75..149, columns 150..224
    low = torch.full((1, 256, 256), -5.0)
    low[:, 64:128, 128:192] = 5.0
    if frame == 256:
        low[:, 171:, :] = 50.0  # the padding must be cropped away
    low = torch.nn.functional.interpolate(low[:, None], size=(frame, frame), mode="area")[:, 0]
    logits = logits_to_original(low, resized_size((H, W)), (H, W))
    assert logits.shape == (1, H, W)
    expected = np.zeros((H, W), bool)
    expected[75:150, 150:225] = True
    mask = (logits[0] > 0).numpy()
    assert dice(mask, expected) > 0.97
    assert not mask[190:].any()


@pytest.mark.parametrize("size", [(H, W), (W, H)])
def test_predicted_masks_come_back_where_the_box_was(
    segmenter: LiteMedSAMSegmenter, size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decoder that paints its (model-frame) box shows the whole round trip of the coordinates."""

    def paint_box(features: torch.Tensor, *, boxes: torch.Tensor, **_: object) -> tuple[torch.Tensor, torch.Tensor]:
        grid = torch.arange(256.0)
        cols = (grid >= boxes[:, 0, None]) & (grid <= boxes[:, 2, None])
        rows = (grid >= boxes[:, 1, None]) & (grid <= boxes[:, 3, None])
        inside = rows[:, :, None] & cols[:, None, :]
        return (inside.float() * 20 - 10)[:, None], torch.ones(len(boxes), 1)

    monkeypatch.setattr(segmenter.model, "decode_prepared", paint_box)
    monkeypatch.setattr(segmenter, "box_margin", 0.0)  # the exact round trip (the margin is tested above)
    boxes = [[30, 60, 150, 180], [5, 5, 60, 25], [100, 40, 200, 190]]
    prediction = segmenter.predict(random_embedding(size), Prompts.from_boxes(boxes))
    assert prediction.masks.shape == (3, *size)
    for mask, box in zip(prediction.masks.numpy(), boxes, strict=True):
        expected = np.zeros(size, bool)
        expected[box[1] : box[3], box[0] : box[2]] = True
        assert dice(mask, expected) > 0.95
        assert np.abs(np.array(tight_box(mask)) - np.array(box)).max() <= 2


# ---------------------------------------------------------------- predictions of the random network


@pytest.mark.parametrize("num_boxes", [1, 3])
def test_predict_shapes_on_a_non_square_image(segmenter: LiteMedSAMSegmenter, num_boxes: int) -> None:
    boxes = [[10, 20, 100, 150], [150, 30, 290, 190], [0, 0, 300, 200]][:num_boxes]
    prediction = segmenter.predict(random_embedding(), Prompts.from_boxes(boxes))
    assert prediction.masks.shape == (num_boxes, H, W) and prediction.masks.dtype == torch.bool
    assert prediction.logits.shape == (num_boxes, H, W) and prediction.logits.dtype == torch.float32
    assert prediction.scores.shape == (num_boxes,)
    assert torch.equal(prediction.masks, prediction.logits > 0)


def test_batched_prediction_equals_one_by_one(segmenter: LiteMedSAMSegmenter) -> None:
    embedding = random_embedding(seed=3)
    boxes = [[10, 20, 100, 150], [150, 30, 290, 190]]
    together = segmenter.predict(embedding, Prompts.from_boxes(boxes))
    for index, box in enumerate(boxes):
        alone = segmenter.predict(embedding, Prompts.from_boxes([box]))
        assert torch.allclose(alone.logits[0], together.logits[index], atol=1e-4)


def test_point_prompts_give_one_mask_per_object(segmenter: LiteMedSAMSegmenter) -> None:
    prompts = Prompts.from_points([[[50.0, 60.0], [0.0, 0.0]], [[200.0, 100.0], [210.0, 120.0]]], [[1, -1], [1, 0]])
    prediction = segmenter.predict(random_embedding(), prompts)
    assert prediction.masks.shape == (2, H, W)
    both = Prompts(
        boxes=np.array([[10.0, 20.0, 100.0, 150.0]]), points=np.array([[[50.0, 60.0]]]), point_labels=np.array([[1]])
    )
    assert segmenter.predict(random_embedding(), both).masks.shape == (1, H, W)


def test_encode_gives_a_value_at_the_model_grid(segmenter: LiteMedSAMSegmenter) -> None:
    image = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    embedding = segmenter.encode(image)
    assert embedding.features.shape == (1, 256, 64, 64) and not embedding.features.requires_grad
    assert embedding.original_size == (H, W) and embedding.resized_size == (171, 256)
    assert embedding.model_id == segmenter.model_id == "litemedsam"
    assert segmenter.predict(embedding, Prompts.from_boxes([[10, 10, 50, 50]])).masks.shape == (1, H, W)
    assert isinstance(segmenter, PromptableSegmenter)


def test_embedding_of_another_model_is_refused(segmenter: LiteMedSAMSegmenter) -> None:
    other = Embedding(
        features=torch.zeros(1, 256, 64, 64), original_size=(H, W), resized_size=(171, 256), model_id="sam_vit_b"
    )
    with pytest.raises(InputError, match="sam_vit_b"):
        segmenter.predict(other, Prompts.from_boxes([[0, 0, 10, 10]]))


# ---------------------------------------------------------------- prompt validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give boxes or points"),
        ({"boxes": np.zeros((0, 4))}, r"shape \(N>=1, 4\)"),
        ({"boxes": np.array([[1.0, 2.0, 3.0]])}, r"shape \(N>=1, 4\)"),
        ({"boxes": np.array([[10.0, 10.0, 10.0, 20.0]])}, r"empty box \(10.0, 10.0, 10.0, 20.0\)"),
        ({"boxes": np.array([[30.0, 10.0, 20.0, 20.0]])}, r"empty box \(30.0, 10.0, 20.0, 20.0\)"),
        ({"boxes": np.array([[np.nan, 10.0, 20.0, 20.0]])}, "non-finite"),
        ({"points": np.zeros((1, 1, 2))}, "point_labels"),
        ({"points": np.zeros((1, 2, 2)), "point_labels": np.array([[1, 2]])}, "point label 2"),
        ({"points": np.zeros((1, 2, 2)), "point_labels": np.array([[-1, -1]])}, "only padding"),
        ({"points": np.full((1, 1, 2), np.inf), "point_labels": np.array([[1]])}, "non-finite"),
        (
            {"boxes": np.ones((2, 4)) * [0, 0, 5, 5], "points": np.zeros((1, 1, 2)), "point_labels": np.ones((1, 1))},
            "2 boxes but 1 point sets",
        ),
    ],
)
def test_invalid_prompts_raise_input_error(kwargs: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(InputError, match=message):
        Prompts(**kwargs)


def test_prompts_outside_the_image_are_refused(segmenter: LiteMedSAMSegmenter) -> None:
    inside = Prompts.from_boxes([[0, 0, W, H]])
    inside.check_inside((H, W))  # max is exclusive: the full image is a valid box
    with pytest.raises(InputError, match=r"box \(0.0, 0.0, 301.0, 200.0\) leaves the 200x300 image"):
        segmenter.predict(random_embedding(), Prompts.from_boxes([[0, 0, W + 1, H]]))
    with pytest.raises(InputError, match=r"box \(-1.0, 5.0, 20.0, 20.0\)"):
        Prompts.from_boxes([[-1, 5, 20, 20]]).check_inside((H, W))
    with pytest.raises(InputError, match=r"point \(10.0, 200.0\) leaves"):
        Prompts.from_points([[[10.0, 200.0]]], [[1]]).check_inside((H, W))
    Prompts.from_points([[[10.0, 10.0], [999.0, 999.0]]], [[1, -1]]).check_inside((H, W))  # padding is ignored


def test_prompts_are_frozen_copies_and_accept_case_boxes() -> None:
    source = np.array([[1.0, 2.0, 30.0, 40.0]])
    prompts = Prompts(boxes=source)
    source[0, 0] = 99.0
    assert prompts.boxes is not None and prompts.boxes[0, 0] == 1.0
    with pytest.raises(ValueError, match="read-only"):
        prompts.boxes[0, 0] = 5.0
    from_case = Prompts.from_boxes([Box(xmin=1, ymin=2, xmax=30, ymax=40, label=1)])
    assert from_case.boxes is not None and np.array_equal(from_case.boxes, prompts.boxes)
    assert from_case.num_objects == 1


# ---------------------------------------------------------------- embedding cache


class CountingSegmenter:
    """A cheap stand-in segmenter: the embedding is a function of the image; counts its encode calls."""

    def __init__(self, weights_sha256: str = "a" * 64) -> None:
        self.calls = 0
        self._weights = weights_sha256

    @property
    def model_id(self) -> str:
        return "counting"

    @property
    def weights_sha256(self) -> str:
        return self._weights

    def encode(self, image: np.ndarray) -> Embedding:
        self.calls += 1
        features = torch.full((1, 4, 2, 2), float(np.asarray(image, dtype=np.float64).mean()))
        return Embedding(features=features, original_size=image.shape[:2], resized_size=(2, 3), model_id="counting")

    def predict(self, embedding: Embedding, prompts: Prompts) -> object:
        raise NotImplementedError


def test_cache_keys_change_with_image_shape_dtype_model_and_weights() -> None:
    image = np.arange(24, dtype=np.uint8).reshape(4, 6)
    key = embedding_key(image, model_id="m", weights_sha256="w")
    assert key == embedding_key(image.copy(), model_id="m", weights_sha256="w")
    changed = image.copy()
    changed[0, 0] += 1
    others = {
        embedding_key(changed, model_id="m", weights_sha256="w"),
        embedding_key(image.reshape(6, 4), model_id="m", weights_sha256="w"),
        embedding_key(image.astype(np.int8), model_id="m", weights_sha256="w"),
        embedding_key(image, model_id="other", weights_sha256="w"),
        embedding_key(image, model_id="m", weights_sha256="w2"),
        embedding_key(image, model_id="m", weights_sha256="w", version="0.0.0"),
    }
    assert len(others) == 6 and key not in others


def test_cached_segmenter_hits_and_misses(tmp_path: Path) -> None:
    inner = CountingSegmenter()
    cached = CachedSegmenter(inner, EmbeddingCache(tmp_path))
    image = np.random.default_rng(0).integers(0, 255, (5, 7), dtype=np.uint8)
    first = cached.encode(image)
    second = cached.encode(image)
    assert (cached.misses, cached.hits, inner.calls) == (1, 1, 1)
    assert torch.equal(first.features, second.features)
    assert second.original_size == (5, 7) and second.resized_size == (2, 3) and second.model_id == "counting"
    cached.encode(image[::-1].copy())  # another image
    assert (cached.misses, inner.calls) == (2, 2)
    other_weights = CachedSegmenter(CountingSegmenter("b" * 64), EmbeddingCache(tmp_path))
    other_weights.encode(image)  # same image, other weights: a miss
    assert other_weights.misses == 1
    assert isinstance(cached, PromptableSegmenter)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other_key", "pickled_object"])
def test_corrupt_cache_entry_is_recomputed(tmp_path: Path, damage: str) -> None:
    inner = CountingSegmenter()
    cache = EmbeddingCache(tmp_path)
    cached = CachedSegmenter(inner, cache)
    image = np.full((5, 7), 42, np.uint8)
    cached.encode(image)
    path = cache.path(cached.key(image))
    if damage == "garbage":
        path.write_bytes(b"not a torch file")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:40])
    elif damage == "other_key":
        entry = torch.load(path, weights_only=True)
        entry["key"] = "0" * 64
        torch.save(entry, path)
    else:
        torch.save({"payload": Box(xmin=0, ymin=0, xmax=1, ymax=1)}, path)  # refused by weights_only=True
    embedding = cached.encode(image)
    assert inner.calls == 2 and cached.misses == 2
    assert float(embedding.features.mean()) == 42.0
    reloaded = cache.load(cached.key(image))  # the entry was rewritten
    assert reloaded is not None and torch.equal(reloaded.features, embedding.features)


# ---------------------------------------------------------------- with the pretrained weights


@pytest.fixture(scope="module")
def pretrained() -> LiteMedSAMSegmenter:
    from frugalseg.weights import weights_path

    try:
        weights_path("litemedsam")
    except InputError as error:
        pytest.skip(f"LiteMedSAM weights not cached ({error})")
    return LiteMedSAMSegmenter.from_cache()


def test_pretrained_weights_load_strictly(pretrained: LiteMedSAMSegmenter) -> None:
    from frugalseg.weights import weights_spec

    assert pretrained.weights_sha256 == weights_spec("litemedsam").sha256
    assert len(pretrained.model.state_dict()) == 435


def test_pretrained_segments_a_bright_disc_from_a_tight_box(pretrained: LiteMedSAMSegmenter) -> None:
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:H, :W]
    disc = np.hypot(rows - 90, cols - 170) < 45
    image = np.clip(np.where(disc, 190.0, 50.0) + rng.normal(0, 10, (H, W)), 0, 255).astype(np.uint8)
    prediction = pretrained.predict(pretrained.encode(image), Prompts.from_boxes([tight_box(disc)]))
    assert dice(prediction.masks[0].numpy(), disc) > 0.9


@pytest.mark.slow
def test_pretrained_on_a_real_dermoscopy_image(pretrained: LiteMedSAMSegmenter) -> None:
    from PIL import Image

    root = real_data_root() / "ph2"
    if not (root / "images" / "IMD002.png").is_file():
        pytest.skip(f"PH2 data not found under {root}")
    image = np.asarray(Image.open(root / "images" / "IMD002.png").convert("RGB"))
    target = np.asarray(Image.open(root / "lesion_masks" / "IMD002_lesion.png").convert("L")) > 127
    prediction = pretrained.predict(pretrained.encode(image), Prompts.from_boxes([tight_box(target)]))
    assert prediction.masks.shape == (1, *target.shape)
    assert dice(prediction.masks[0].numpy(), target) > 0.9
