"""Inference-only fast path of the TinyViT image encoder: same weights, same maths, less memory traffic.

:func:`encode_fast` computes exactly what ``TinyViT.forward`` computes in eval mode (outputs agree to float
rounding, about 1e-5), reading the parameters of a :class:`~frugalseg.foundation.tiny_vit.TinyViT` as they are
at the call (nothing is cached or converted). The savings on a CPU come from:

* **Row tiling of the full-resolution stage.** Each MBConv (and patch merging) block ``1x1 -> GELU -> 3x3
  depthwise -> GELU -> 1x1`` runs on bands of rows with a one-row halo, so its 4x-expanded hidden tensor
  (64 MiB per image at 256x256) never exists whole: each band stays in the cache and reuses one allocation.
* **In-place activations and residual adds** on tensors the function itself created (large fresh allocations
  cost a page fault per 4 KiB on first touch, more than the arithmetic of a GELU).
* **Batch norm folded into the convolutions** and pointwise convolutions as matrix products on ``(B, H, W, C)``.
* **Fused window attention** (:func:`torch.nn.functional.scaled_dot_product_attention` with the relative
  position bias as an additive mask) instead of materialising the attention matrix.

It requires eval mode (batch norm uses running statistics) and is meant to be called without autograd.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from frugalseg.foundation.layers import LayerNorm2d
from frugalseg.foundation.tiny_vit import (
    AttentionStage,
    ConvBN,
    ConvStage,
    MBConv,
    PatchMerging,
    TinyViT,
    TinyViTBlock,
    window_merge,
    window_partition,
)

__all__ = ["CHUNK_TOKENS", "TILE_ROWS", "encode_fast", "fold_conv_bn"]

TILE_ROWS = 16
"""Output rows per band in the tiled convolution blocks (a band of 256 hidden channels x 256 columns is 4 MiB)."""

CHUNK_TOKENS = 2048
"""Tokens per group in the attention stages (bounds the MLP's hidden tensor and the attention's q, k, v)."""


def fold_conv_bn(module: ConvBN) -> tuple[torch.Tensor, torch.Tensor]:
    """The convolution weight and bias equal to ``bn(conv(x))`` with the batch norm's running statistics.

    Shape:
        returns weight ``(out, in / groups, k, k)`` and bias ``(out,)``.
    """
    bn = module.bn
    if bn.running_var is None or bn.running_mean is None or bn.weight is None or bn.bias is None:
        raise ValueError("fold_conv_bn: the batch norm needs affine parameters and running statistics")
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    return module.c.weight * scale[:, None, None, None], bn.bias - bn.running_mean * scale


def _gelu_(x: torch.Tensor) -> torch.Tensor:
    """Exact (erf) GELU in place."""
    return torch.ops.aten.gelu_(x)


def _pointwise(x: torch.Tensor, module: ConvBN) -> torch.Tensor:
    """1x1 ConvBN on channels-last values. Shape: ``(..., C_in)`` -> ``(..., C_out)``."""
    weight, bias = fold_conv_bn(module)
    return F.linear(x, weight.flatten(1), bias)


def _conv_block_tiled(
    x: torch.Tensor, expand: ConvBN, depthwise: ConvBN, project: ConvBN, *, residual: bool, tile_rows: int
) -> torch.Tensor:
    """``project(gelu(depthwise(gelu(expand(x)))))`` (plus ``x`` and a GELU when ``residual``), band by band.

    The depthwise convolution is 3x3 with padding 1 and stride 1 or 2. Output band ``[o0, o1)`` needs input
    rows ``stride * o0 - 1 .. stride * (o1 - 1) + 1``; the band's input starts at a multiple of the stride so
    that its convolution (zero padding on all sides) lines up with the global one, and the output rows that
    would see the band's artificial padding are dropped.

    Shape:
        x: ``(B, H, W, C)`` contiguous; returns ``(B, H', W', C_out)`` contiguous with ``H' = ceil(H / stride)``.
    """
    w1, b1 = fold_conv_bn(expand)
    w2, b2 = fold_conv_bn(depthwise)
    w3, b3 = fold_conv_bn(project)
    w1t, w3t = w1.flatten(1).t(), w3.flatten(1).t()
    stride = depthwise.c.stride[0]
    hidden = w1.shape[0]
    batch, height, width, channels = x.shape
    out_h, out_w = (height - 1) // stride + 1, (width - 1) // stride + 1
    out = x.new_empty(batch, out_h, out_w, w3.shape[0])
    if residual and out.shape != x.shape:
        raise ValueError(f"residual block changes the shape {tuple(x.shape)} -> {tuple(out.shape)}")
    for b in range(batch):
        for o0 in range(0, out_h, tile_rows):
            o1 = min(out_h, o0 + tile_rows)
            first = max(0, stride * (o0 - 1))
            last = min(height, stride * (o1 - 1) + 2)
            rows = x[b, first:last].reshape(-1, channels)
            h = _gelu_(torch.addmm(b1, rows, w1t)).view(1, last - first, width, hidden).permute(0, 3, 1, 2)
            skip = o0 - first // stride
            y = F.conv2d(h, w2, b2, stride=stride, padding=1, groups=hidden)[:, :, skip : skip + o1 - o0]
            y = _gelu_(y).permute(0, 2, 3, 1).reshape(-1, hidden)
            band = out[b, o0:o1].view(-1, out.shape[-1])
            torch.addmm(b3, y, w3t, out=band)
            if residual:
                _gelu_(band.add_(x[b, o0:o1].reshape(-1, channels)))
    return out


def _window_attention(x: torch.Tensor, block: TinyViTBlock) -> torch.Tensor:
    """The attention branch of a TinyViT block on windows. Shape: ``(B', T, dim)`` -> ``(B', T, dim)``."""
    attn = block.attn
    batch, tokens, dim = x.shape
    qkv = attn.qkv(attn.norm(x)).view(batch, tokens, attn.num_heads, 3 * attn.head_dim).transpose(1, 2)
    q, k, v = qkv.split(attn.head_dim, dim=-1)
    bias = attn.attention_biases[:, attn.attention_bias_idxs].to(q.dtype)  # (heads, T, T); 4D selects the fused kernel
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None], scale=attn.head_dim**-0.5)
    return attn.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


def _windowed_attention(windows: torch.Tensor, block: TinyViTBlock, chunk_tokens: int) -> torch.Tensor:
    """:func:`_window_attention` over groups of windows of about ``chunk_tokens`` tokens (bounded memory)."""
    per_chunk = max(1, chunk_tokens // windows.shape[1])
    if windows.shape[0] <= per_chunk:
        return _window_attention(windows, block)
    out = torch.empty_like(windows)
    for start in range(0, windows.shape[0], per_chunk):
        out[start : start + per_chunk] = _window_attention(windows[start : start + per_chunk], block)
    return out


def _attention_block(x: torch.Tensor, size: tuple[int, int], block: TinyViTBlock, chunk_tokens: int) -> torch.Tensor:
    """One TinyViT block on tokens ``(B, H * W, dim)``; ``x`` is updated in place and returned."""
    batch, tokens, channels = x.shape
    height, width = size
    window = block.window_size
    if height == window and width == window:
        x.add_(_windowed_attention(x, block, chunk_tokens))
    else:
        windows, padded = window_partition(x.view(batch, height, width, channels), window)
        x.add_(window_merge(_windowed_attention(windows, block, chunk_tokens), window, padded, size, batch))
    weight, bias = fold_conv_bn(block.local_conv)
    grid = x.view(batch, height, width, channels).permute(0, 3, 1, 2)  # channels-last view, no copy
    pad = block.local_conv.c.padding
    x = F.conv2d(grid, weight, bias, padding=pad, groups=channels).permute(0, 2, 3, 1).reshape(batch, tokens, -1)
    mlp = block.mlp
    flat = x.view(-1, channels)
    for start in range(0, flat.shape[0], chunk_tokens):
        part = flat[start : start + chunk_tokens]
        part.add_(mlp.fc2(_gelu_(mlp.fc1(mlp.norm(part)))))
    return x


def _downsample(x: torch.Tensor, merge: PatchMerging, tile_rows: int) -> torch.Tensor:
    """Patch merging on ``(B, H, W, C)``; returns ``(B, H', W', C_out)``."""
    return _conv_block_tiled(x, merge.conv1, merge.conv2, merge.conv3, residual=False, tile_rows=tile_rows)


def _layer_norm_channels_last(x: torch.Tensor, norm: LayerNorm2d) -> torch.Tensor:
    """:class:`LayerNorm2d` on ``(B, H, W, C)`` values (the same normalisation over channels)."""
    return F.layer_norm(x, (x.shape[-1],), norm.weight, norm.bias, norm.eps)


@torch.no_grad()
def encode_fast(
    encoder: TinyViT, x: torch.Tensor, *, tile_rows: int = TILE_ROWS, chunk_tokens: int = CHUNK_TOKENS
) -> torch.Tensor:
    """``encoder(x)`` for an encoder in eval mode, computed with the fused and tiled kernels above.

    Args:
        encoder: the TinyViT (its parameters are read at the call; it must be in eval mode).
        x: images normalised to [0, 1].
        tile_rows: output rows per band of the convolution blocks (memory/speed trade-off, not numerics).
        chunk_tokens: tokens per group in the attention stages (likewise).

    Raises:
        ValueError: the encoder is in training mode, or ``tile_rows`` or ``chunk_tokens`` below 1.

    Shape:
        x: ``(B, 3, 256, 256)``; returns ``(B, 256, 64, 64)`` (contiguous).
    """
    if encoder.training:
        raise ValueError("encode_fast needs the encoder in eval mode (batch norm with running statistics)")
    if tile_rows < 1 or chunk_tokens < 1:
        raise ValueError(f"tile_rows and chunk_tokens must be >= 1, got {tile_rows} and {chunk_tokens}")
    stem = encoder.patch_embed.seq
    h = x.permute(0, 2, 3, 1).contiguous()
    h = _pointwise(_gelu_(_pointwise(h, cast(ConvBN, stem[0]))), cast(ConvBN, stem[2]))
    for stage in encoder.layers:
        if isinstance(stage, ConvStage):
            for block in stage.blocks:
                assert isinstance(block, MBConv)
                h = _conv_block_tiled(h, block.conv1, block.conv2, block.conv3, residual=True, tile_rows=tile_rows)
        elif isinstance(stage, AttentionStage):
            batch, height, width, channels = h.shape
            tokens = h.reshape(batch, height * width, channels)
            for block in stage.blocks:
                assert isinstance(block, TinyViTBlock)
                tokens = _attention_block(tokens, (height, width), block, chunk_tokens)
            h = tokens.view(batch, height, width, channels)
        else:
            raise ValueError(f"encode_fast: unknown stage type {type(stage).__name__}")
        if stage.downsample is not None:
            h = _downsample(h.contiguous(), stage.downsample, tile_rows)
    project, norm1 = cast(nn.Conv2d, encoder.neck[0]), cast(LayerNorm2d, encoder.neck[1])
    conv, norm2 = cast(nn.Conv2d, encoder.neck[2]), cast(LayerNorm2d, encoder.neck[3])
    h = _layer_norm_channels_last(F.linear(h, project.weight.flatten(1)), norm1)
    h = F.conv2d(h.permute(0, 3, 1, 2), conv.weight, padding=conv.padding)
    h = _layer_norm_channels_last(h.permute(0, 2, 3, 1), norm2)
    return h.permute(0, 3, 1, 2).contiguous()
