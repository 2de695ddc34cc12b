"""Inference-only fast path of the SAM mask decoder: same weights, same maths, about a third of the arithmetic.

:func:`decode_fast` computes what :class:`~frugalseg.foundation.sam_mask_decoder.MaskDecoder` computes without a
mask prompt (logits agree to float rounding, about 1e-5), for many prompts on one image. The savings:

* **Work that depends on the image alone is done once per image** (:func:`prepare_image`): the image tokens
  with the no-mask embedding, their positional encoding, and the first block's image-side projections (its
  token-to-image keys and values, its image-to-token queries). Every prompt on the image reuses them.
* **Image-side projections are folded into the few prompt tokens.** In a cross-attention between ``N`` tokens and
  ``P = 4096`` image tokens, a projection of the image tokens costs ``P x 256 x 128`` multiply-adds. Attention
  scores are bilinear and values enter linearly, so the projection weights can be applied to the tokens side
  instead: scores are the image tokens times a ``256 x (heads * N)`` matrix, the token-to-image output is the
  attention-weighted sum of raw image tokens projected afterwards, and the image-to-token output projection is
  applied to the ``heads * N`` token values before they are mixed. With ``N = 7`` (a box prompt), ``heads * N =
  56`` columns replace 128 or 256 per product.
* **The upscaling runs only over the embedding cells covering the image** (``valid``), not the padding of the
  square input frame, whose logits are never read; those pixels get :data:`OUTSIDE_LOGIT`.

Constant additive terms of the attention scores that are the same for every key (a token query against the
key bias) are dropped, which a softmax ignores. Meant to be called without autograd on a decoder in eval mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from frugalseg.foundation.layers import LayerNorm2d
from frugalseg.foundation.sam_mask_decoder import (
    Attention,
    MaskDecoder,
    TwoWayAttentionBlock,
    transposed_conv_2x2_rows,
)

__all__ = ["OUTSIDE_LOGIT", "DecoderImage", "decode_fast", "prepare_image"]

OUTSIDE_LOGIT = -1e4
"""Logit of the input frame's padding pixels (outside the image), which the fast path does not upscale."""


@dataclass(frozen=True)
class DecoderImage:
    """The decoder's per-image work, shared by every prompt on the image.

    Shape (``P = h * w`` image tokens, ``C`` channels, ``H`` heads of width ``d``):
        keys: ``(1, P, C)`` image tokens plus the no-mask embedding; key_pe: ``(1, P, C)``;
        first_k, first_v: ``(1, H, P, d)`` the first block's token-to-image keys and values;
        first_q: ``(1, H, P, d)`` its image-to-token queries; grid: ``(h, w)``.
    """

    keys: torch.Tensor
    key_pe: torch.Tensor
    first_k: torch.Tensor
    first_v: torch.Tensor
    first_q: torch.Tensor
    grid: tuple[int, int]


def prepare_image(
    decoder: MaskDecoder, image_embedding: torch.Tensor, image_pe: torch.Tensor, no_mask: torch.Tensor
) -> DecoderImage:
    """The per-image part of the decoder. Shape: image_embedding, image_pe, no_mask ``(1, C, h, w)``."""
    first = _blocks(decoder)[0]
    keys = (image_embedding + no_mask).flatten(2).transpose(1, 2).contiguous()
    key_pe = image_pe.flatten(2).transpose(1, 2).contiguous()
    with_pe = keys + key_pe
    to_image, to_token = first.cross_attn_token_to_image, first.cross_attn_image_to_token
    return DecoderImage(
        keys=keys,
        key_pe=key_pe,
        first_k=to_image.split_heads(to_image.k_proj(with_pe)),
        first_v=to_image.split_heads(to_image.v_proj(keys)),
        first_q=to_token.split_heads(to_token.q_proj(with_pe)),
        grid=(int(image_embedding.shape[2]), int(image_embedding.shape[3])),
    )


def decode_fast(
    decoder: MaskDecoder,
    image: DecoderImage,
    sparse: torch.Tensor,
    *,
    multimask_output: bool = False,
    valid: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``MaskDecoder.forward`` without a mask prompt, for ``B`` objects on one prepared image.

    Args:
        decoder: the mask decoder :func:`prepare_image` was given.
        image: its per-image part.
        sparse: ``(B, N, C)`` prompt embeddings.
        multimask_output: the three multimask outputs instead of the single mask.
        valid: ``(rows, cols)`` of the upscaled frame that hold the image; the rest is :data:`OUTSIDE_LOGIT`
            (``None``: the whole frame).

    Returns:
        Mask logits ``(B, M, 4h, 4w)`` and IoU predictions ``(B, M)``, as ``MaskDecoder.forward``.
    """
    transformer = decoder.transformer
    batch = sparse.shape[0]
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    query_pe = torch.cat([output_tokens.unsqueeze(0).expand(batch, -1, -1), sparse], dim=1)

    first, *others = _blocks(decoder)
    queries = first.norm1(first.self_attn(query_pe, query_pe, query_pe))
    to_image = first.cross_attn_token_to_image
    q = to_image.split_heads(to_image.q_proj(queries + query_pe))
    out = F.scaled_dot_product_attention(
        q, image.first_k.expand(batch, -1, -1, -1), image.first_v.expand(batch, -1, -1, -1)
    )
    queries = first.norm2(queries + to_image.out_proj(_merge_heads(out)))
    queries = first.norm3(queries + first.mlp(queries))
    to_token = first.cross_attn_image_to_token
    keys = first.norm4(image.keys + _image_to_tokens_cached(to_token, image.first_q, queries + query_pe, queries))

    for layer in others:
        q = queries + query_pe
        queries = layer.norm1(queries + layer.self_attn(q, q, queries))
        keys_with_pe = keys + image.key_pe
        queries = layer.norm2(
            queries + _tokens_to_image(layer.cross_attn_token_to_image, queries + query_pe, keys_with_pe, keys)
        )
        queries = layer.norm3(queries + layer.mlp(queries))
        to_token = layer.cross_attn_image_to_token
        keys = layer.norm4(keys + _image_to_tokens(to_token, keys_with_pe, queries + query_pe, queries))

    final = _tokens_to_image(transformer.final_attn_token_to_image, queries + query_pe, keys + image.key_pe, keys)
    hs = transformer.norm_final_attn(queries + final)

    selected = range(1, decoder.num_mask_tokens) if multimask_output else range(1)
    hyper_in = torch.stack([decoder.output_hypernetworks_mlps[index](hs[:, 1 + index]) for index in selected], dim=1)
    height, width = image.grid
    cells = (height, width) if valid is None else (math.ceil(valid[0] / 4), math.ceil(valid[1] / 4))
    grid = keys.view(batch, height, width, -1)[:, : cells[0], : cells[1]]
    masks = keys.new_full((batch, len(selected), 4 * height, 4 * width), OUTSIDE_LOGIT)
    masks[:, :, : 4 * cells[0], : 4 * cells[1]] = _upscaled_logits(decoder, grid, hyper_in)
    iou_pred = decoder.iou_prediction_head(hs[:, 0])
    return masks, iou_pred[:, 1:] if multimask_output else iou_pred[:, :1]


def _upscaled_logits(decoder: MaskDecoder, grid: torch.Tensor, hyper_in: torch.Tensor) -> torch.Tensor:
    """``hyper_in`` dotted with ``decoder.upscale(grid)``, without interleaving the upscaled channels: both
    kernel-2, stride-2 transposed convolutions run as matrix products on each pixel's sub-pixels, and only the
    final logits are put in place.

    Shape:
        grid: ``(B, h, w, C)`` image tokens; hyper_in: ``(B, M, C // 8)``. Returns ``(B, M, 4h, 4w)``.
    """
    layers = decoder.output_upscaling
    first, second = cast(nn.ConvTranspose2d, layers[0]), cast(nn.ConvTranspose2d, layers[3])
    norm = cast(LayerNorm2d, layers[1])
    batch, rows, cols, channels = grid.shape
    x = transposed_conv_2x2_rows(grid.reshape(-1, channels), first)  # a row per sub-pixel
    x = F.gelu(F.layer_norm(x, (x.shape[-1],), norm.weight, norm.bias, norm.eps))
    x = F.gelu(transposed_conv_2x2_rows(x, second))
    # x: rows ordered (batch, row, col, a, b, c, d); pixel (4 row + 2a + c, 4 col + 2b + d)
    logits = hyper_in @ x.view(batch, -1, x.shape[-1]).transpose(1, 2)  # (B, M, h w 16)
    logits = logits.view(batch, -1, rows, cols, 2, 2, 2, 2).permute(0, 1, 2, 4, 6, 3, 5, 7)
    return logits.reshape(batch, -1, 4 * rows, 4 * cols)


def _blocks(decoder: MaskDecoder) -> list[TwoWayAttentionBlock]:
    return [cast(TwoWayAttentionBlock, block) for block in decoder.transformer.layers]


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, T, d)`` -> ``(B, T, H * d)``."""
    batch, heads, tokens, width = x.shape
    return x.transpose(1, 2).reshape(batch, tokens, heads * width)


def _per_head(linear: torch.nn.Linear, heads: int) -> torch.Tensor:
    """A projection's weight split by output head: ``(H, d, C_in)``."""
    return linear.weight.view(heads, -1, linear.weight.shape[1])


def _tokens_to_image(attn: Attention, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``attn(queries, keys, values)`` for ``N`` token queries over ``P`` image tokens, with the image-side
    projections applied to the tokens instead. Shape: queries ``(B, N, C)``; keys, values ``(B, P, C)``."""
    heads = attn.num_heads
    q = attn.split_heads(attn.q_proj(queries))  # (B, H, N, d)
    batch, _, tokens, width = q.shape
    folded = torch.einsum("bhnd,hdc->bhnc", q, _per_head(attn.k_proj, heads)) / math.sqrt(width)
    scores = folded.reshape(batch, heads * tokens, -1) @ keys.transpose(1, 2)  # (B, HN, P)
    mixed = (torch.softmax(scores, dim=-1) @ values).view(batch, heads, tokens, -1)  # (B, H, N, C)
    bias = attn.v_proj.bias.view(heads, 1, width)
    out = torch.einsum("bhnc,hdc->bhnd", mixed, _per_head(attn.v_proj, heads)) + bias  # weights sum to 1
    return attn.out_proj(_merge_heads(out))


def _token_keys_values(
    attn: Attention, tokens: torch.Tensor, values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values of the tokens an image-to-token attention reads: ``(B, H, N, d)`` each."""
    return attn.split_heads(attn.k_proj(tokens)), attn.split_heads(attn.v_proj(values))


def _image_to_tokens_cached(
    attn: Attention, image_q: torch.Tensor, tokens: torch.Tensor, values: torch.Tensor
) -> torch.Tensor:
    """``attn(image, tokens, values)`` given the image queries ``(1, H, P, d)`` already projected. Returns
    ``(B, P, C)``."""
    k, v = _token_keys_values(attn, tokens, values)
    scores = (k @ image_q.transpose(-1, -2)) / math.sqrt(k.shape[-1])  # (B, H, N, P)
    return _mix_token_values(attn, scores, v)


def _image_to_tokens(attn: Attention, image: torch.Tensor, tokens: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``attn(image, tokens, values)`` for ``P`` image queries ``(B, P, C)`` over ``N`` tokens ``(B, N, C)``,
    the query projection folded into the token keys. Returns ``(B, P, C)``."""
    k, v = _token_keys_values(attn, tokens, values)
    batch, heads, count, width = k.shape
    scale = 1 / math.sqrt(width)
    folded = torch.einsum("bhnd,hdc->bhnc", k, _per_head(attn.q_proj, heads)).reshape(batch, heads * count, -1)
    offset = torch.einsum("bhnd,hd->bhn", k, attn.q_proj.bias.view(heads, width)).reshape(batch, -1, 1)
    scores = torch.baddbmm(offset * scale, folded * scale, image.transpose(1, 2))  # (B, HN, P); offset kept
    return _mix_token_values(attn, scores.view(batch, heads, count, -1), v)


def _mix_token_values(attn: Attention, scores: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Softmax over the tokens of ``(B, H, N, P)`` scores, then the output projection applied to the ``(B, H, N,
    d)`` token values before they are mixed. Returns ``(B, P, C)``."""
    batch, heads, count, width = values.shape
    weights = torch.softmax(scores, dim=2).reshape(batch, heads * count, -1)
    out_weight = attn.out_proj.weight.view(-1, heads, width)  # (C, H, d)
    projected = torch.einsum("bhnd,chd->bhnc", values, out_weight).reshape(batch, heads * count, -1)
    return torch.baddbmm(attn.out_proj.bias.expand(batch, 1, -1), weights.transpose(1, 2), projected)
