"""TinyViT-5M image encoder in the variant used by LiteMedSAM (256x256 input -> 256x64x64 embedding).

Architecture (Wu et al., "TinyViT", ECCV 2022; MobileSAM / LiteMedSAM variant), written from its description:

* ``patch_embed``: two 1x1 conv+BN layers (3 -> 32 -> 64 channels) with GELU, at full resolution;
* ``layers.0``: two MBConv blocks (1x1 expand x4, 3x3 depthwise, 1x1 project, residual), then patch merging;
* ``layers.1..3``: TinyViT blocks: windowed multi-head self-attention with a learned relative-position bias per
  head, a 3x3 depthwise "local" conv+BN, and an MLP; each stage but the last ends with patch merging
  (1x1 conv, 3x3 depthwise conv with stride 2 -- stride 1 into the last stage --, 1x1 conv);
* ``neck``: 1x1 conv to 256 channels, channel layer norm, 3x3 conv, channel layer norm.

Module and parameter names follow the LiteMedSAM checkpoint (``image_encoder.*`` keys), so its state_dict
loads with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from frugalseg.foundation.layers import LayerNorm2d

__all__ = ["MBConv", "PatchMerging", "TinyViT", "TinyViTBlock", "WindowAttention", "window_partition"]


class ConvBN(nn.Module):
    """Convolution without bias followed by batch norm (``c`` and ``bn``, as in the checkpoint).

    In eval mode the batch norm is folded into the convolution on the fly (one pass over the activations
    instead of two; nothing is cached, so later changes to the parameters are always seen).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        bn_weight_init: float = 1.0,
    ) -> None:
        super().__init__()
        self.c = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.zeros_(self.bn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.bn(self.c(x))
        bn = self.bn
        running_var, running_mean = bn.running_var, bn.running_mean
        if running_var is None or running_mean is None or bn.weight is None or bn.bias is None:
            return self.bn(self.c(x))
        scale = bn.weight * torch.rsqrt(running_var + bn.eps)
        weight = self.c.weight * scale[:, None, None, None]
        bias = bn.bias - running_mean * scale
        if self.c.kernel_size == (1, 1) and self.c.stride == (1, 1) and self.c.groups == 1:
            # a pointwise conv is a matmul over channels; on a channels-last tensor the permutes are free
            out = F.linear(x.permute(0, 2, 3, 1), weight.flatten(1), bias)
            return out.permute(0, 3, 1, 2)
        return F.conv2d(x, weight, bias, self.c.stride, self.c.padding, self.c.dilation, self.c.groups)


class PatchEmbed(nn.Module):
    """Pointwise stem: ``in_channels -> embed_dim // 2 -> embed_dim`` at the input resolution."""

    def __init__(self, in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(ConvBN(in_channels, embed_dim // 2), nn.GELU(), ConvBN(embed_dim // 2, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual block: expand (1x1), depthwise 3x3, project (1x1), add, GELU.

    Shape:
        x: ``(B, C, H, W)``; returns ``(B, C, H, W)``.
    """

    def __init__(self, channels: int, *, expand_ratio: float = 4.0) -> None:
        super().__init__()
        hidden = int(channels * expand_ratio)
        self.conv1 = ConvBN(channels, hidden)
        self.conv2 = ConvBN(hidden, hidden, kernel_size=3, groups=hidden)
        self.conv3 = ConvBN(hidden, channels, bn_weight_init=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.conv1(x))
        y = F.gelu(self.conv2(y))
        return F.gelu(self.conv3(y) + x)


class PatchMerging(nn.Module):
    """Change width and (with ``stride=2``) halve the resolution: 1x1 conv, 3x3 depthwise conv, 1x1 conv.

    Shape:
        x: ``(B, dim, H, W)``; returns ``(B, out_dim, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, dim: int, out_dim: int, *, stride: int = 2) -> None:
        super().__init__()
        self.conv1 = ConvBN(dim, out_dim)
        self.conv2 = ConvBN(out_dim, out_dim, kernel_size=3, stride=stride, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.conv1(x))
        x = F.gelu(self.conv2(x))
        return self.conv3(x)


def window_partition(x: torch.Tensor, window_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad a token map at the bottom/right to a multiple of ``window_size`` and cut it into windows.

    Shape:
        x: ``(B, H, W, C)``; returns ``(B * nH * nW, window_size**2, C)`` and the padded ``(pH, pW)``.
    """
    batch, height, width, channels = x.shape
    pad_b = (window_size - height % window_size) % window_size
    pad_r = (window_size - width % window_size) % window_size
    if pad_b or pad_r:
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
    ph, pw = height + pad_b, width + pad_r
    x = x.view(batch, ph // window_size, window_size, pw // window_size, window_size, channels)
    return x.transpose(2, 3).reshape(-1, window_size * window_size, channels), (ph, pw)


def window_merge(
    windows: torch.Tensor, window_size: int, padded: tuple[int, int], size: tuple[int, int], batch: int
) -> torch.Tensor:
    """Inverse of :func:`window_partition`, dropping the padding. Returns ``(B, H * W, C)``."""
    ph, pw = padded
    channels = windows.shape[-1]
    x = windows.view(batch, ph // window_size, pw // window_size, window_size, window_size, channels)
    x = x.transpose(2, 3).reshape(batch, ph, pw, channels)[:, : size[0], : size[1]]
    return x.reshape(batch, size[0] * size[1], channels)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside one window, with a learned bias per head and |relative offset|.

    The input is layer-normed first. The bias for the query at ``(r1, c1)`` and the key at ``(r2, c2)`` is
    ``attention_biases[head, |r1 - r2| * window_size + |c1 - c2|]``.

    Shape:
        x: ``(B, window_size**2, dim)``; returns the same.
    """

    attention_bias_idxs: torch.Tensor

    def __init__(self, dim: int, *, num_heads: int, window_size: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window_size * window_size))
        coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
        coords = coords.flatten(1)  # (2, N): row, column of each position
        offsets = (coords[:, :, None] - coords[:, None, :]).abs()
        self.register_buffer("attention_bias_idxs", offsets[0] * window_size + offsets[1], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        qkv = self.qkv(self.norm(x)).view(batch, tokens, self.num_heads, 3 * self.head_dim).transpose(1, 2)
        q, k, v = qkv.split(self.head_dim, dim=-1)  # per head, the features are laid out [q | k | v]
        bias = self.attention_biases[:, self.attention_bias_idxs].to(q.dtype)
        attn = torch.softmax((q * self.head_dim**-0.5) @ k.transpose(-2, -1) + bias, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(batch, tokens, -1))


class TokenMLP(nn.Module):
    """Layer norm, linear, GELU, linear, on tokens ``(B, N, dim)``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """Window attention (residual), depthwise local conv, MLP (residual).

    Windows are cut after zero-padding the token map at the bottom/right; the padded tokens take part in the
    attention as the original TinyViT does (the pretrained weights expect it).

    Shape:
        x: ``(B, H * W, dim)`` with ``size = (H, W)``; returns the same.
    """

    def __init__(
        self, dim: int, *, num_heads: int, window_size: int, mlp_ratio: float = 4.0, local_conv_size: int = 3
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.attn = WindowAttention(dim, num_heads=num_heads, window_size=window_size)
        self.mlp = TokenMLP(dim, int(dim * mlp_ratio))
        self.local_conv = ConvBN(dim, dim, kernel_size=local_conv_size, groups=dim)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        batch, tokens, channels = x.shape
        height, width = size
        if height == self.window_size and width == self.window_size:
            x = x + self.attn(x)
        else:
            windows, padded = window_partition(x.view(batch, height, width, channels), self.window_size)
            x = x + window_merge(self.attn(windows), self.window_size, padded, size, batch)
        x = self.local_conv(x.transpose(1, 2).reshape(batch, channels, height, width))
        x = x.view(batch, channels, tokens).transpose(1, 2)
        return x + self.mlp(x)


class ConvStage(nn.Module):
    """MBConv blocks then an optional patch merging. Shape: ``(B, C, H, W)`` in and out."""

    def __init__(self, dim: int, *, depth: int, expand_ratio: float, downsample: PatchMerging | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, expand_ratio=expand_ratio) for _ in range(depth))
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class AttentionStage(nn.Module):
    """TinyViT blocks then an optional patch merging. Shape: ``(B, C, H, W)`` in and out."""

    def __init__(
        self,
        dim: int,
        *,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        local_conv_size: int,
        downsample: PatchMerging | None,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            TinyViTBlock(
                dim, num_heads=num_heads, window_size=window_size, mlp_ratio=mlp_ratio, local_conv_size=local_conv_size
            )
            for _ in range(depth)
        )
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        for block in self.blocks:
            tokens = block(tokens, (height, width))
        x = tokens.transpose(1, 2).reshape(batch, channels, height, width)
        return x if self.downsample is None else self.downsample(x)


class TinyViT(nn.Module):
    """The LiteMedSAM image encoder. Defaults are TinyViT-5M as trained in LiteMedSAM.

    Args:
        in_channels: image channels (3).
        embed_dims: width of each stage.
        depths: blocks per stage (stage 0 is convolutional).
        num_heads: attention heads of stages 1.. (entry 0 unused).
        window_sizes: attention window of stages 1.. (entry 0 unused).
        merge_strides: stride of the patch merging after stages 0, 1, 2.
        mlp_ratio: hidden width of the token MLPs relative to the stage width.
        expand_ratio: MBConv expansion.
        local_conv_size: kernel of the depthwise conv between attention and MLP.
        out_channels: channels of the neck (the embedding).

    Shape:
        x: ``(B, 3, 256, 256)`` normalised to [0, 1]; returns ``(B, 256, 64, 64)``.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        embed_dims: Sequence[int] = (64, 128, 160, 320),
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (2, 4, 5, 10),
        window_sizes: Sequence[int] = (7, 7, 14, 7),
        merge_strides: Sequence[int] = (2, 2, 1),
        mlp_ratio: float = 4.0,
        expand_ratio: float = 4.0,
        local_conv_size: int = 3,
        out_channels: int = 256,
    ) -> None:
        super().__init__()
        stages = len(embed_dims)
        if not (len(depths) == len(num_heads) == len(window_sizes) == stages and len(merge_strides) == stages - 1):
            raise ValueError(
                "TinyViT: embed_dims, depths, num_heads, window_sizes need one entry per stage "
                "and merge_strides one per stage transition"
            )
        self.patch_embed = PatchEmbed(in_channels, embed_dims[0])
        self.layers = nn.ModuleList()
        for index, dim in enumerate(embed_dims):
            downsample = (
                PatchMerging(dim, embed_dims[index + 1], stride=merge_strides[index]) if index < stages - 1 else None
            )
            stage: nn.Module
            if index == 0:
                stage = ConvStage(dim, depth=depths[0], expand_ratio=expand_ratio, downsample=downsample)
            else:
                stage = AttentionStage(
                    dim,
                    depth=depths[index],
                    num_heads=num_heads[index],
                    window_size=window_sizes[index],
                    mlp_ratio=mlp_ratio,
                    local_conv_size=local_conv_size,
                    downsample=downsample,
                )
            self.layers.append(stage)
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], out_channels, kernel_size=1, bias=False),
            LayerNorm2d(out_channels),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_channels),
        )
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.late_features(self.early_features(x, 0), 0)

    def early_features(self, x: torch.Tensor, stages: int) -> torch.Tensor:
        """The activations entering stage ``stages``: the patch embedding and the first ``stages`` stages."""
        # channels-last makes the full-resolution depthwise convolutions of stage 0 several times faster
        x = self.patch_embed(x.contiguous(memory_format=torch.channels_last))
        for stage in self.layers[:stages]:
            x = stage(x)
        return x

    def late_features(self, x: torch.Tensor, stages: int) -> torch.Tensor:
        """The embedding from :meth:`early_features` ``(x, stages)``: the remaining stages and the neck."""
        for stage in self.layers[stages:]:
            x = stage(x)
        return self.neck(x)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
