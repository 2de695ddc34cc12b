"""A residual U-Net for 2D segmentation, sized for CPU training.

Encoder stages of two 3x3 convolutions with a residual shortcut, instance-free batch normalisation and
LeakyReLU; strided-convolution down-sampling; bilinear up-sampling plus skip concatenation in the decoder.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from frugalseg.models.registry import register_model

__all__ = ["ConvBlock", "UNet", "UNetDecoder"]


class ConvBlock(nn.Module):
    """Two 3x3 conv-BN-LeakyReLU layers with a residual shortcut.

    Shape:
        ``(B, in_channels, H, W) -> (B, out_channels, H / stride, W / stride)``
    """

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.norm1(self.conv1(x)), 0.01)
        y = self.norm2(self.conv2(self.dropout(y)))
        return F.leaky_relu(y + self.shortcut(x), 0.01)


class UNetDecoder(nn.Module):
    """Decoder taking encoder features (finest first) and returning the finest decoded feature map.

    Shape:
        ``features[i]: (B, channels[i], H / 2**i, W / 2**i)`` -> ``(B, decoder_channels[-1], H, W)``
    """

    def __init__(
        self, encoder_channels: Sequence[int], decoder_channels: Sequence[int], *, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if len(decoder_channels) != len(encoder_channels) - 1:
            raise ValueError("expected one decoder stage per encoder skip connection")
        blocks = []
        deeper = encoder_channels[-1]
        for skip, out in zip(reversed(encoder_channels[:-1]), decoder_channels, strict=True):
            blocks.append(ConvBlock(deeper + skip, out, dropout=dropout))
            deeper = out
        self.blocks = nn.ModuleList(blocks)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for block, skip in zip(self.blocks, reversed(features[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return x


class UNet(nn.Module):
    """Residual U-Net.

    Args:
        in_channels: image channels.
        num_classes: output channels (background included).
        channels: feature channels per resolution level, finest first.
        dropout: spatial dropout inside decoder blocks (enables MC-dropout uncertainty).

    Shape:
        ``(B, in_channels, H, W) -> (B, num_classes, H, W)``; any ``H, W`` (internally padded to a
        multiple of ``2 ** (len(channels) - 1)``).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        channels: Sequence[int] = (16, 32, 64, 128, 256),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.channels = tuple(channels)
        stages = [ConvBlock(in_channels, channels[0])]
        stages += [ConvBlock(c_in, c_out, stride=2) for c_in, c_out in itertools.pairwise(channels)]
        self.encoder = nn.ModuleList(stages)
        self.decoder = UNetDecoder(channels, list(reversed(channels[:-1])), dropout=dropout)
        self.head = nn.Conv2d(channels[0], num_classes, 1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder feature maps, finest first."""
        features = []
        for stage in self.encoder:
            x = stage(x)
            features.append(x)
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = _pad_to_multiple(x, 2 ** (len(self.channels) - 1))
        logits = self.head(self.decoder(self.encode(x)))
        return logits[..., :height, :width]


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    pad_h = (-x.shape[-2]) % multiple
    pad_w = (-x.shape[-1]) % multiple
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x


@register_model("unet_test")
def unet_test(*, in_channels: int, num_classes: int, **kwargs: object) -> UNet:
    """Tiny U-Net for the test suite (~10k parameters)."""
    return UNet(in_channels=in_channels, num_classes=num_classes, channels=(4, 8, 16), **kwargs)  # type: ignore[arg-type]


@register_model("unet_small")
def unet_small(*, in_channels: int, num_classes: int, **kwargs: object) -> UNet:
    """Residual U-Net, 16-256 channels over 5 levels (~2.6M parameters)."""
    return UNet(in_channels=in_channels, num_classes=num_classes, channels=(16, 32, 64, 128, 256), **kwargs)  # type: ignore[arg-type]


@register_model("unet_base")
def unet_base(*, in_channels: int, num_classes: int, **kwargs: object) -> UNet:
    """Residual U-Net, 32-512 channels over 5 levels (~10M parameters)."""
    return UNet(in_channels=in_channels, num_classes=num_classes, channels=(32, 64, 128, 256, 512), **kwargs)  # type: ignore[arg-type]
