"""Tests for the EfficientNet-Lite0 encoder and the ``unet_effl0`` model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from frugalseg.errors import InputError
from frugalseg.models import create_model, list_models
from frugalseg.models.effl0 import (
    ENCODER_CHANNELS,
    STAGES,
    EfficientNetLite0Encoder,
    UNetEffL0,
    _SameConv2d,
    adapt_stem_weight,
    checkpoint_shapes,
    encoder_state_dict,
    unet_effl0,
)
from frugalseg.weights import load_weights, weights_path

HEAD_SHAPES = {
    "_conv_head.weight": (1280, 320, 1, 1),
    **{f"_bn1.{name}": (1280,) for name in ("weight", "bias", "running_mean", "running_var")},
    "_bn1.num_batches_tracked": (),
    "_fc.weight": (1000, 1280),
    "_fc.bias": (1000,),
}


def _synthetic_checkpoint(seed: int = 0) -> dict[str, torch.Tensor]:
    """A full checkpoint (encoder + head + classifier) with random values, shaped like the real file."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in {**checkpoint_shapes(), **HEAD_SHAPES}.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.1
    return state


def _cached_effl0() -> Path | None:
    try:
        return weights_path("effl0")
    except InputError:
        return None


needs_weights = pytest.mark.skipif(
    _cached_effl0() is None, reason="effl0 weights not in the cache (run: frugalseg weights fetch effl0)"
)


def test_checkpoint_shapes_count_and_channels() -> None:
    # 6 stem tensors; block 0 has no expansion (depthwise + project: 2 x (1 conv + 5 bn)); the other 15 add one.
    blocks = sum(stage[0] for stage in STAGES)
    assert blocks == 16
    shapes = checkpoint_shapes()
    assert len(shapes) == 6 + 12 + (blocks - 1) * 18
    assert shapes["_blocks.15._project_conv.weight"] == (320, 1152, 1, 1)
    assert shapes["_blocks.3._depthwise_conv.weight"] == (144, 1, 5, 5)
    assert ENCODER_CHANNELS == (16, 24, 40, 112, 320)


@pytest.mark.parametrize("in_channels", [1, 3])
def test_encoder_keys_and_shapes_match_checkpoint(in_channels: int) -> None:
    model_shapes = {key: tuple(v.shape) for key, v in EfficientNetLite0Encoder(in_channels).state_dict().items()}
    expected = dict(checkpoint_shapes())
    expected["_conv_stem.weight"] = (32, in_channels, 3, 3)
    assert model_shapes == expected


@pytest.mark.parametrize("in_channels", [1, 3, 6])
def test_load_synthetic_checkpoint_strictly(in_channels: int) -> None:
    checkpoint = _synthetic_checkpoint()
    encoder = EfficientNetLite0Encoder(in_channels)
    encoder.load_pretrained(checkpoint)
    loaded = encoder.state_dict()
    for key in checkpoint_shapes():
        if key != "_conv_stem.weight":
            assert torch.equal(loaded[key], checkpoint[key]), key
    stem, rgb = loaded["_conv_stem.weight"], checkpoint["_conv_stem.weight"]
    assert stem.shape == (32, in_channels, 3, 3)
    # A constant image sees the summed kernel: adaptation keeps that sum when in_channels is 1 or a multiple of 3.
    torch.testing.assert_close(stem.sum(dim=1), rgb.sum(dim=1))
    if in_channels == 3:
        assert torch.equal(stem, rgb)


def test_adapt_stem_weight_two_channels_and_errors() -> None:
    rgb = torch.arange(2 * 3 * 1 * 1, dtype=torch.float32).reshape(2, 3, 1, 1)
    adapted = adapt_stem_weight(rgb, 2)
    torch.testing.assert_close(adapted, rgb[:, :2] * 1.5)
    with pytest.raises(ValueError, match="RGB stem kernel"):
        adapt_stem_weight(torch.zeros(2, 4, 3, 3), 1)


def test_encoder_state_dict_rejects_wrong_checkpoint() -> None:
    checkpoint = _synthetic_checkpoint()
    del checkpoint["_blocks.7._bn1.bias"]
    with pytest.raises(ValueError, match=r"missing \['_blocks.7._bn1.bias'\]"):
        encoder_state_dict(checkpoint)
    checkpoint = _synthetic_checkpoint()
    checkpoint["_blocks.2._project_conv.weight"] = torch.zeros(24, 143, 1, 1)
    with pytest.raises(ValueError, match=r"_blocks\.2\._project_conv\.weight has shape"):
        encoder_state_dict(checkpoint)


@pytest.mark.parametrize("size", [8, 9])
def test_same_padding_matches_tensorflow(size: int) -> None:
    # A centre-delta 3x3 stride-2 kernel reads the pixel under its centre. TensorFlow SAME pads (0, 1) on an
    # even size (centres at 1, 3, ...) and (1, 1) on an odd size (centres at 0, 2, ...).
    conv = _SameConv2d(1, 1, 3, stride=2)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 1.0
    x = torch.arange(size * size, dtype=torch.float32).reshape(1, 1, size, size)
    start = 1 if size % 2 == 0 else 0
    assert torch.equal(conv(x), x[..., start::2, start::2])
    assert conv(x).shape[-1] == math.ceil(size / 2)


def test_encoder_feature_shapes_on_odd_size() -> None:
    with torch.no_grad():
        features = EfficientNetLite0Encoder(1).eval()(torch.randn(1, 1, 37, 46))
    strides = [2, 4, 8, 16, 32]
    expected = [(c, math.ceil(37 / s), math.ceil(46 / s)) for s, c in zip(strides, ENCODER_CHANNELS, strict=True)]
    assert [tuple(f.shape[1:]) for f in features] == expected


# Inputs are padded to a multiple of 32, so these all run the encoder at 64 x 64 (cheap; one-time kernel set-up).
@pytest.mark.parametrize(("in_channels", "height", "width"), [(1, 64, 64), (3, 33, 47), (1, 50, 60)])
def test_unet_effl0_forward_backward(in_channels: int, height: int, width: int) -> None:
    torch.manual_seed(0)
    model = create_model("unet_effl0", in_channels=in_channels, num_classes=3)
    assert isinstance(model, UNetEffL0)
    x = torch.randn(2, in_channels, height, width)
    logits = model(x)
    assert logits.shape == (2, 3, height, width)
    target = torch.randint(0, 3, (2, height, width))
    F.cross_entropy(logits, target).backward()
    stem_grad = model.encoder._conv_stem.weight.grad
    assert stem_grad is not None and torch.isfinite(stem_grad).all() and stem_grad.abs().sum() > 0
    assert model.head.weight.grad is not None and model.head.weight.grad.abs().sum() > 0


def test_unet_effl0_batch_equals_per_item_in_eval() -> None:
    torch.manual_seed(0)
    model = unet_effl0(in_channels=1, num_classes=2).eval()
    x = torch.randn(2, 1, 40, 56)
    with torch.no_grad():
        batched = model(x)
        single = torch.cat([model(x[i : i + 1]) for i in range(2)])
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-5)


def test_unet_effl0_registered_and_pretrained_missing_raises(tmp_path: Path) -> None:
    assert "unet_effl0" in list_models()
    with pytest.raises(InputError, match="frugalseg weights fetch effl0"):
        create_model("unet_effl0", in_channels=1, num_classes=2, pretrained=True, cache=tmp_path)


# --- with the real weights (skipped when the cache is empty) ----------------------------------------------------


@needs_weights
def test_real_checkpoint_keys_match_derived_shapes() -> None:
    state = load_weights("effl0")
    assert {key: tuple(v.shape) for key, v in state.items()} == {**checkpoint_shapes(), **HEAD_SHAPES}


@needs_weights
def test_pretrained_encoder_recognises_a_cat() -> None:
    skimage_data = pytest.importorskip("skimage.data")
    from skimage.transform import resize

    state = load_weights("effl0")
    encoder = EfficientNetLite0Encoder(3)
    encoder.load_pretrained(state)
    encoder.eval()
    image = resize(skimage_data.chelsea(), (224, 224), anti_aliasing=True).astype(np.float32)
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    x = (x - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with torch.no_grad():
        top = encoder(x)[-1]
        top = F.conv2d(top, state["_conv_head.weight"])
        top = F.batch_norm(top, state["_bn1.running_mean"], state["_bn1.running_var"], state["_bn1.weight"],
                           state["_bn1.bias"], training=False, eps=1e-3)  # fmt: skip
        logits = F.linear(F.relu6(top).mean(dim=(2, 3)), state["_fc.weight"], state["_fc.bias"])
    assert torch.isfinite(logits).all()
    assert int(logits.argmax()) in range(281, 286)  # ImageNet's domestic cat classes (tabby ... Egyptian cat)


@needs_weights
@pytest.mark.parametrize("in_channels", [1, 3])
def test_unet_effl0_pretrained_output_finite(in_channels: int) -> None:
    model = unet_effl0(in_channels=in_channels, num_classes=2, pretrained=True).eval()
    reference = load_weights("effl0")["_blocks.9._depthwise_conv.weight"]
    assert torch.equal(model.encoder.state_dict()["_blocks.9._depthwise_conv.weight"], reference)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, in_channels, 50, 60, generator=generator)
    x = (x - x.mean(dim=(2, 3), keepdim=True)) / x.std(dim=(2, 3), keepdim=True)
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (1, 2, 50, 60) and torch.isfinite(logits).all()
