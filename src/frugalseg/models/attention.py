"""Spatial and channel-wise probability attention (the error branch of the segmentation-quality net).

After Zhang et al. 2023 ("Efficient deep-learning-assisted annotation for medical image segmentation"),
who put a position + channel attention module (in the manner of DANet, Fu et al. 2019) on top of the
segmentation network's probability map to predict where its segmentation is wrong.

Here the position attention runs at a *reduced* resolution: the fused probability/feature map is
average-pooled to at most ``reduced_size x reduced_size`` before the ``(N, N)`` affinity matrix is formed
(``N = reduced_size ** 2``), and the attended map is upsampled back. Its memory is therefore
``O(reduced_size ** 4)`` per image whatever the input size (a 512 x 512 IVUS frame at full resolution would
need a 262144 x 262144 matrix). The channel attention is a ``C x C`` map over the probability channels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ChannelAttention",
    "PositionAttention",
    "ProbabilityAttention",
    "channel_attention",
    "position_attention",
]


def position_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention between all positions of a (small) feature map.

    Args:
        query: per-position queries.
        key: per-position keys (same channels as ``query``).
        value: per-position values.

    Returns:
        ``(attended, attention)``: ``attended[b, :, n] = sum_m attention[b, n, m] * value[b, :, m]``.

    Shape:
        ``query, key: (B, D, h, w)``, ``value: (B, V, h, w)`` -> ``attended: (B, V, h, w)``,
        ``attention: (B, h * w, h * w)`` (rows sum to 1).
    """
    batch, depth, height, width = query.shape
    q = query.flatten(2).transpose(1, 2)  # (B, N, D)
    k = key.flatten(2)  # (B, D, N)
    energy = torch.bmm(q, k) / math.sqrt(depth)  # (B, N, N)
    attention = torch.softmax(energy, dim=-1)
    attended = torch.bmm(value.flatten(2), attention.transpose(1, 2))  # (B, V, N)
    return attended.view(batch, value.shape[1], height, width), attention


def channel_attention(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """DANet channel attention: each channel is re-expressed as a softmax-weighted mixture of all channels.

    The affinity ``E = X X^T`` over flattened channels is turned into ``softmax(max(E) - E)`` row-wise, as in
    DANet's channel attention module (subtracting from the row maximum keeps the softmax numerically tame and
    favours complementary channels); the energy is normalised by the number of positions so that it does not
    grow with the image size.

    Args:
        x: channel maps (here: class probabilities).

    Returns:
        ``(attended, attention)`` with ``attended[b, c] = sum_d attention[b, c, d] * x[b, d]``.

    Shape:
        ``x: (B, C, H, W)`` -> ``attended: (B, C, H, W)``, ``attention: (B, C, C)`` (rows sum to 1).
    """
    flat = x.flatten(2)  # (B, C, HW)
    energy = torch.bmm(flat, flat.transpose(1, 2)) / flat.shape[-1]  # (B, C, C)
    energy = energy.amax(dim=-1, keepdim=True) - energy
    attention = torch.softmax(energy, dim=-1)
    return torch.bmm(attention, flat).view_as(x), attention


class PositionAttention(nn.Module):
    """Position (spatial) attention computed at a reduced resolution, then upsampled.

    Queries and keys are projected to ``max(1, channels // 8)`` channels; values keep ``channels``.
    The attended map is added back through a learned scale ``gamma`` initialised at zero (DANet), so at
    initialisation the module is the identity.

    Args:
        channels: channels of the input map.
        reduced_size: side of the pooled grid the affinity matrix is computed on (inputs smaller than that
            are not upsampled: the grid is ``min(reduced_size, H) x min(reduced_size, W)``).

    Returns (forward):
        ``(out, attention)``; ``attention`` is returned so that a caller (or a forward hook) can inspect it.

    Shape:
        ``(B, channels, H, W)`` -> ``out: (B, channels, H, W)``, ``attention: (B, N, N)`` with
        ``N = min(reduced_size, H) * min(reduced_size, W)`` — never larger than ``reduced_size ** 2``.
    """

    def __init__(self, channels: int, *, reduced_size: int = 32) -> None:
        super().__init__()
        if channels < 1 or reduced_size < 1:
            raise ValueError(f"expected channels >= 1 and reduced_size >= 1, got {channels}, {reduced_size}")
        inner = max(1, channels // 8)
        self.reduced_size = reduced_size
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = x.shape[-2:]
        grid = (min(self.reduced_size, height), min(self.reduced_size, width))
        small = F.adaptive_avg_pool2d(x, grid)
        attended, attention = position_attention(self.query(small), self.key(small), self.value(small))
        if grid != (height, width):
            attended = F.interpolate(attended, size=(height, width), mode="bilinear", align_corners=False)
        return x + self.gamma * attended, attention


class ChannelAttention(nn.Module):
    """Channel attention with a learned residual scale ``gamma`` (zero at initialisation).

    Returns (forward):
        ``(out, attention)``.

    Shape:
        ``(B, C, H, W)`` -> ``out: (B, C, H, W)``, ``attention: (B, C, C)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attended, attention = channel_attention(x)
        return x + self.gamma * attended, attention


class ProbabilityAttention(nn.Module):
    """Fuse a segmentation's probability map with decoder features through position and channel attention.

    1. ``fused = conv1x1([probabilities, features])`` — the probability map guides the features.
    2. Position attention on ``fused`` at a ``reduced_size`` grid (memory ``O(reduced_size ** 4)``),
       upsampled back to ``H x W``.
    3. Channel attention (``C x C``) across the probability channels.
    4. ``out = conv3x3-BN-LeakyReLU([position_out, channel_out])``.

    Args:
        num_classes: probability channels ``C``.
        feature_channels: channels ``F`` of the decoder features; also the number of output channels.
        reduced_size: side of the pooled grid for position attention.

    Shape:
        ``probabilities: (B, C, H, W)``, ``features: (B, F, H, W)`` -> ``(B, F, H, W)``.
    """

    def __init__(self, num_classes: int, feature_channels: int, *, reduced_size: int = 32) -> None:
        super().__init__()
        if num_classes < 2 or feature_channels < 1:
            raise ValueError(
                f"expected num_classes >= 2 and feature_channels >= 1, got {num_classes}, {feature_channels}"
            )
        self.num_classes = num_classes
        self.feature_channels = feature_channels
        self.fuse_in = nn.Sequential(
            nn.Conv2d(num_classes + feature_channels, feature_channels, 1, bias=False),
            nn.BatchNorm2d(feature_channels),
            nn.LeakyReLU(0.01),
        )
        self.position = PositionAttention(feature_channels, reduced_size=reduced_size)
        self.channel = ChannelAttention()
        self.fuse_out = nn.Sequential(
            nn.Conv2d(feature_channels + num_classes, feature_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(feature_channels),
            nn.LeakyReLU(0.01),
        )

    def forward(self, probabilities: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        if probabilities.ndim != 4 or probabilities.shape[1] != self.num_classes:
            raise ValueError(f"expected probabilities (B, {self.num_classes}, H, W), got {tuple(probabilities.shape)}")
        if features.ndim != 4 or features.shape[1] != self.feature_channels:
            raise ValueError(
                f"expected features of shape (B, {self.feature_channels}, H, W), got {tuple(features.shape)}"
            )
        if probabilities.shape[-2:] != features.shape[-2:] or probabilities.shape[0] != features.shape[0]:
            raise ValueError(
                f"probabilities {tuple(probabilities.shape)} and features {tuple(features.shape)} "
                "must share batch size and spatial size"
            )
        fused = self.fuse_in(torch.cat([probabilities, features], dim=1))
        spatial, _ = self.position(fused)
        channel, _ = self.channel(probabilities)
        return self.fuse_out(torch.cat([spatial, channel], dim=1))
