"""U-Net with an EfficientNet-Lite0 encoder that can start from ImageNet weights (``unet_effl0``).

EfficientNet-Lite0 (Tan & Le 2019, "lite" variant for mobile): a 3x3 stride-2 stem conv with 32 channels,
16 inverted-residual (MBConv) blocks in 7 stages, ReLU6 everywhere, no squeeze-excitation. Convolutions use
TensorFlow "SAME" padding (asymmetric on stride 2) because the weights were converted from TensorFlow; the
1280-channel head conv and the classifier are not built (the U-Net does not use them).

Module attribute names follow the checkpoint of the ``effl0`` weights (``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv`` ...), so its tensors load strictly; :func:`checkpoint_shapes` derives that key list
independently of the modules, for tests and loaders.

Input normalisation: the weights were trained in TensorFlow on RGB scaled to ``[-1, 1]`` ((x - 127) / 128),
a spread of about 0.5 per channel. :class:`UNetEffL0` expects per-image, per-channel z-scored images (what the
trainer gives) and multiplies them by :data:`INPUT_SCALE` = 0.5 to meet that spread; do not feed it raw
``[0, 255]`` or ``[0, 1]`` intensities. (Checked on natural photographs: z-score x 0.5 classifies as confidently
as the original preprocessing, plain z-scores a little less so.)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from frugalseg.models.registry import register_model
from frugalseg.models.unet import UNetDecoder

__all__ = [
    "ENCODER_CHANNELS",
    "INPUT_SCALE",
    "STAGES",
    "EfficientNetLite0Encoder",
    "MBConvBlock",
    "UNetEffL0",
    "adapt_stem_weight",
    "checkpoint_shapes",
    "encoder_state_dict",
    "unet_effl0",
]

# (repeats, kernel_size, stride of the first block, expand_ratio, out_channels) per stage
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32
BN_EPS = 1e-3  # the TensorFlow value the weights were trained with (momentum stays at PyTorch's 0.1 for fine-tuning)
INPUT_SCALE = 0.5  # z-scored input -> the spread of the [-1, 1] inputs the weights were trained on
# Stages whose output is a feature map at strides 2, 4, 8, 16, 32 (the last stage of each resolution).
_TAP_STAGES = (0, 1, 2, 4, 6)
ENCODER_CHANNELS: tuple[int, ...] = tuple(STAGES[i][4] for i in _TAP_STAGES)
_HEAD_PREFIXES = ("_conv_head.", "_bn1.", "_fc.")


def _same_pad(x: torch.Tensor, kernel_size: int, stride: int) -> torch.Tensor:
    """TensorFlow "SAME" zero padding for a strided conv: output ``ceil(size / stride)``, extra pixel at the end."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((-(-size // stride) - 1) * stride + kernel_size - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads) if any(pads) else x


class _SameConv2d(nn.Conv2d):
    """Bias-free conv with TensorFlow "SAME" padding (symmetric, static when the stride is 1)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, groups: int = 1
    ) -> None:
        padding = (kernel_size - 1) // 2 if stride == 1 else 0
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, groups=groups, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] != 1:
            x = _same_pad(x, self.kernel_size[0], self.stride[0])
        return super().forward(x)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand (if ``expand_ratio > 1``), depthwise kxk, 1x1 project, identity skip.

    Shape:
        ``(B, in_channels, H, W) -> (B, out_channels, ceil(H / stride), ceil(W / stride))``
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, kernel_size: int, stride: int, expand_ratio: int
    ) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.expand = expand_ratio != 1
        if self.expand:
            self._expand_conv = _SameConv2d(in_channels, hidden, 1)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._depthwise_conv = _SameConv2d(hidden, hidden, kernel_size, stride=stride, groups=hidden)
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._project_conv = _SameConv2d(hidden, out_channels, 1)
        self._bn2 = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class EfficientNetLite0Encoder(nn.Module):
    """EfficientNet-Lite0 feature extractor without head.

    Args:
        in_channels: image channels (the stem of pretrained weights is adapted by :func:`adapt_stem_weight`).

    Shape:
        ``(B, in_channels, H, W)`` -> five maps, finest first, ``(B, ENCODER_CHANNELS[i], H_i, W_i)`` with
        ``H_i = ceil(H / 2 ** (i + 1))`` (strides 2, 4, 8, 16, 32; channels 16, 24, 40, 112, 320).
    """

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"expected in_channels >= 1, got {in_channels}")
        self.in_channels = in_channels
        self._conv_stem = _SameConv2d(in_channels, STEM_CHANNELS, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(STEM_CHANNELS, eps=BN_EPS)
        blocks: list[nn.Module] = []
        taps: list[int] = []
        channels = STEM_CHANNELS
        for index, (repeats, kernel_size, stride, expand_ratio, out_channels) in enumerate(STAGES):
            for repeat in range(repeats):
                blocks.append(
                    MBConvBlock(
                        channels,
                        out_channels,
                        kernel_size=kernel_size,
                        stride=stride if repeat == 0 else 1,
                        expand_ratio=expand_ratio,
                    )
                )
                channels = out_channels
            if index in _TAP_STAGES:
                taps.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self.taps = tuple(taps)
        self.out_channels = ENCODER_CHANNELS
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        features = []
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in self.taps:
                features.append(x)
        return features

    def load_pretrained(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load an ``effl0`` checkpoint strictly (head tensors dropped, stem adapted to ``in_channels``)."""
        self.load_state_dict(encoder_state_dict(state_dict, in_channels=self.in_channels), strict=True)


def _init_weights(module: nn.Module) -> None:
    """He-normal (fan-out) convs and unit batch norms, the TensorFlow EfficientNet initialisation."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)


def checkpoint_shapes() -> dict[str, tuple[int, ...]]:
    """Names and shapes of the ``effl0`` checkpoint tensors the encoder uses, derived from :data:`STAGES`.

    Written independently of the module classes so a test can check both against each other and against the
    real file. Batch norms contribute ``weight, bias, running_mean, running_var, num_batches_tracked``.
    """

    def bn(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {
            f"{prefix}.{name}": (channels,) for name in ("weight", "bias", "running_mean", "running_var")
        }
        shapes[f"{prefix}.num_batches_tracked"] = ()
        return shapes

    shapes: dict[str, tuple[int, ...]] = {"_conv_stem.weight": (STEM_CHANNELS, 3, 3, 3), **bn("_bn0", STEM_CHANNELS)}
    channels, index = STEM_CHANNELS, 0
    for repeats, kernel_size, _, expand_ratio, out_channels in STAGES:
        for _ in range(repeats):
            prefix = f"_blocks.{index}"
            hidden = channels * expand_ratio
            if expand_ratio != 1:
                shapes[f"{prefix}._expand_conv.weight"] = (hidden, channels, 1, 1)
                shapes.update(bn(f"{prefix}._bn0", hidden))
            shapes[f"{prefix}._depthwise_conv.weight"] = (hidden, 1, kernel_size, kernel_size)
            shapes.update(bn(f"{prefix}._bn1", hidden))
            shapes[f"{prefix}._project_conv.weight"] = (out_channels, hidden, 1, 1)
            shapes.update(bn(f"{prefix}._bn2", out_channels))
            channels, index = out_channels, index + 1
    return shapes


def adapt_stem_weight(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Adapt an RGB stem kernel to ``in_channels`` input channels.

    One channel: the sum over RGB (a grey image then gives the response the RGB kernel gives to the grey image
    copied into three channels). Other counts: the RGB kernels repeated cyclically, scaled by
    ``3 / in_channels`` so the summed kernel keeps its size (exactly so when ``in_channels`` is a multiple of 3).

    Shape:
        ``(C_out, 3, k, k) -> (C_out, in_channels, k, k)``
    """
    if weight.ndim != 4 or weight.shape[1] != 3:
        raise ValueError(f"expected an RGB stem kernel (C_out, 3, k, k), got shape {tuple(weight.shape)}")
    if in_channels < 1:
        raise ValueError(f"expected in_channels >= 1, got {in_channels}")
    if in_channels == 3:
        return weight.clone()
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    index = torch.arange(in_channels, device=weight.device) % 3
    return weight[:, index] * (3.0 / in_channels)


def encoder_state_dict(state_dict: dict[str, torch.Tensor], *, in_channels: int = 3) -> dict[str, torch.Tensor]:
    """The encoder's part of an ``effl0`` checkpoint: head and classifier dropped, stem adapted.

    Raises:
        ValueError: a tensor the encoder needs is missing or has another shape than :func:`checkpoint_shapes`.
    """
    expected = checkpoint_shapes()
    kept = {key: value for key, value in state_dict.items() if not key.startswith(_HEAD_PREFIXES)}
    missing = sorted(set(expected) - set(kept))
    unexpected = sorted(set(kept) - set(expected))
    if missing or unexpected:
        raise ValueError(f"not an EfficientNet-Lite0 checkpoint: missing {missing[:3]}, unexpected {unexpected[:3]}")
    for key, shape in expected.items():
        if tuple(kept[key].shape) != shape:
            raise ValueError(f"checkpoint tensor {key} has shape {tuple(kept[key].shape)}, expected {shape}")
    kept["_conv_stem.weight"] = adapt_stem_weight(kept["_conv_stem.weight"], in_channels)
    return kept


class UNetEffL0(nn.Module):
    """U-Net on an EfficientNet-Lite0 encoder.

    The decoder (:class:`~frugalseg.models.unet.UNetDecoder`) climbs from stride 32 to stride 2; a 1x1 head
    gives logits there, which are bilinearly up-sampled to the input size (the same as up-sampling the
    features first, since a 1x1 conv commutes with bilinear interpolation, at a quarter of the cost).
    Inputs are replicate-padded to a multiple of 32 and the logits cropped back. Inputs are expected
    z-scored per image and channel; they are multiplied by ``input_scale`` before the encoder (see the module
    docstring), with no other normalisation.

    Args:
        in_channels: image channels.
        num_classes: output channels (background included).
        decoder_channels: channels of the four decoder stages, coarsest first.
        dropout: spatial dropout inside decoder blocks (enables MC-dropout uncertainty).
        input_scale: constant factor applied to the (z-scored) input.

    Shape:
        ``(B, in_channels, H, W) -> (B, num_classes, H, W)``; any ``H, W``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        decoder_channels: Sequence[int] = (128, 64, 32, 16),
        dropout: float = 0.0,
        input_scale: float = INPUT_SCALE,
    ) -> None:
        super().__init__()
        self.input_scale = float(input_scale)
        self.encoder = EfficientNetLite0Encoder(in_channels)
        self.decoder = UNetDecoder(ENCODER_CHANNELS, decoder_channels, dropout=dropout)
        self.head = nn.Conv2d(decoder_channels[-1], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h, pad_w = (-height) % 32, (-width) % 32
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        logits = self.head(self.decoder(self.encoder(x * self.input_scale)))
        logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits[..., :height, :width]


@register_model("unet_effl0")
def unet_effl0(
    *,
    in_channels: int,
    num_classes: int,
    pretrained: bool = False,
    cache: str | Path | None = None,
    dropout: float = 0.0,
) -> UNetEffL0:
    """EfficientNet-Lite0 U-Net (~3.9M parameters); ``pretrained=True`` starts the encoder from ImageNet.

    Pretrained weights come only from the local cache (``frugalseg weights fetch effl0``); nothing downloads.

    Raises:
        InputError: ``pretrained=True`` and the weights are not in the cache or fail their sha256 check.
    """
    model = UNetEffL0(in_channels=in_channels, num_classes=num_classes, dropout=dropout)
    if pretrained:
        from frugalseg.weights import load_weights

        model.encoder.load_pretrained(load_weights("effl0", cache=cache))
    return model
