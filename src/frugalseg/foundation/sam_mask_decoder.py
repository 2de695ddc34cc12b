"""SAM mask decoder: a two-way transformer between prompt tokens and the image embedding, then mask heads.

Written from the description in Kirillov et al., "Segment Anything" (2023). Output tokens (one IoU token and
``num_multimask_outputs + 1`` mask tokens) are prepended to the prompt tokens; after the transformer each mask
token goes through its own hypernetwork MLP and is dotted with the 4x upscaled image embedding. Parameter names
follow the checkpoint (``mask_decoder.*``).
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from frugalseg.foundation.layers import MLP, LayerNorm2d

__all__ = ["Attention", "MaskDecoder", "TwoWayAttentionBlock", "TwoWayTransformer", "transposed_conv_2x2_rows"]


class Attention(nn.Module):
    """Multi-head attention whose projections may shrink the width by ``downsample_rate``.

    Shape:
        q: ``(B, Nq, dim)``, k and v: ``(B, Nk, dim)``; returns ``(B, Nq, dim)``.
    """

    def __init__(self, embedding_dim: int, num_heads: int, *, downsample_rate: int = 1) -> None:
        super().__init__()
        internal = embedding_dim // downsample_rate
        if internal % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide the internal width {internal}")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(embedding_dim, internal)
        self.k_proj = nn.Linear(embedding_dim, internal)
        self.v_proj = nn.Linear(embedding_dim, internal)
        self.out_proj = nn.Linear(internal, embedding_dim)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, H * d)`` -> ``(B, H, T, d)``."""
        batch, tokens, width = x.shape
        return x.reshape(batch, tokens, self.num_heads, width // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split_heads(self.q_proj(q)), self.split_heads(self.k_proj(k)), self.split_heads(self.v_proj(v))
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)  # softmax(q k^T / sqrt(head width)) v
        return self.out_proj(out.reshape(out.shape[0], out.shape[1], -1))


class MLPBlock(nn.Module):
    """``lin2(relu(lin1(x)))``."""

    def __init__(self, embedding_dim: int, mlp_dim: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(embedding_dim, mlp_dim)
        self.lin2 = nn.Linear(mlp_dim, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(F.relu(self.lin1(x)))


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, token-to-image cross-attention, token MLP, image-to-token cross-attention.

    Each step is residual and followed by a layer norm; positional encodings are added to queries and keys
    (except for the self-attention of the first block, which replaces the tokens instead of adding to them).
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        *,
        mlp_dim: int = 2048,
        attention_downsample_rate: int = 2,
        skip_first_layer_pe: bool = False,
    ) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLPBlock(embedding_dim, mlp_dim)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor, key_pe: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        q = queries + query_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """``depth`` two-way blocks, then a last token-to-image attention and layer norm.

    Shape:
        image_embedding, image_pe: ``(B, C, h, w)``; point_embedding: ``(B, N, C)``.
        Returns tokens ``(B, N, C)`` and image tokens ``(B, h * w, C)``.
    """

    def __init__(
        self,
        *,
        depth: int = 2,
        embedding_dim: int = 256,
        num_heads: int = 8,
        mlp_dim: int = 2048,
        attention_downsample_rate: int = 2,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim,
                num_heads,
                mlp_dim=mlp_dim,
                attention_downsample_rate=attention_downsample_rate,
                skip_first_layer_pe=index == 0,
            )
            for index in range(depth)
        )
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(
        self, image_embedding: torch.Tensor, image_pe: torch.Tensor, point_embedding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys = image_embedding.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe)
        attn_out = self.final_attn_token_to_image(queries + point_embedding, keys + key_pe, keys)
        return self.norm_final_attn(queries + attn_out), keys


class MaskDecoder(nn.Module):
    """Predict masks and their IoU from an image embedding and prompt embeddings.

    Args:
        transformer_dim: token width (256).
        num_multimask_outputs: masks in multimask mode (3); one more token gives the single-mask output.
        iou_head_depth, iou_head_hidden_dim: the IoU-prediction MLP.
        transformer_depth, transformer_heads, transformer_mlp_dim: the two-way transformer.
    """

    def __init__(
        self,
        *,
        transformer_dim: int = 256,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        transformer_depth: int = 2,
        transformer_heads: int = 8,
        transformer_mlp_dim: int = 2048,
    ) -> None:
        super().__init__()
        self.transformer = TwoWayTransformer(
            depth=transformer_depth,
            embedding_dim=transformer_dim,
            num_heads=transformer_heads,
            mlp_dim=transformer_mlp_dim,
        )
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth)

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        *,
        multimask_output: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks for ``B`` objects; ``image_embeddings`` with batch 1 is shared by all of them.

        Shape:
            image_embeddings: ``(1 or B, C, h, w)``; image_pe: ``(1, C, h, w)``;
            sparse_prompt_embeddings: ``(B, N, C)``; dense_prompt_embeddings: ``(B, C, h, w)``.
            Returns mask logits ``(B, M, 4h, 4w)`` and IoU predictions ``(B, M)``, with ``M = 1``
            (or ``num_multimask_outputs`` with ``multimask_output=True``).
        """
        batch = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(batch, -1, -1), sparse_prompt_embeddings], dim=1)
        src = image_embeddings.expand(batch, -1, -1, -1) if image_embeddings.shape[0] == 1 else image_embeddings
        src = src + dense_prompt_embeddings
        pos_src = image_pe.expand(batch, -1, -1, -1)
        _, channels, height, width = src.shape

        hs, src_tokens = self.transformer(src, pos_src, tokens)
        selected = range(1, self.num_mask_tokens) if multimask_output else range(1)
        hyper_in = torch.stack([self.output_hypernetworks_mlps[index](hs[:, 1 + index]) for index in selected], dim=1)
        upscaled = self.upscale(src_tokens.reshape(batch, height, width, channels))
        b, h, w, c = upscaled.shape
        masks = (hyper_in @ upscaled.view(b, h * w, c).transpose(1, 2)).view(b, -1, h, w)
        iou_pred = self.iou_prediction_head(hs[:, 0])
        return masks, iou_pred[:, 1:] if multimask_output else iou_pred[:, :1]

    def upscale(self, image_tokens: torch.Tensor) -> torch.Tensor:
        """``output_upscaling`` on channels-last image tokens: the same layers without an NCHW round trip.

        Shape:
            image_tokens: ``(B, h, w, C)``; returns ``(B, 4h, 4w, C // 8)``.
        """
        layers = self.output_upscaling
        first, norm, second = cast(nn.ConvTranspose2d, layers[0]), cast(LayerNorm2d, layers[1]), layers[3]
        x = _transposed_conv_2x2(image_tokens, first)
        x = F.gelu(F.layer_norm(x, (x.shape[-1],), norm.weight, norm.bias, norm.eps))
        return F.gelu(_transposed_conv_2x2(x, cast(nn.ConvTranspose2d, second)))


def _transposed_conv_2x2(x: torch.Tensor, conv: nn.ConvTranspose2d) -> torch.Tensor:
    """A kernel-2, stride-2 transposed convolution on channels-last values: one matrix product per pixel
    (:func:`transposed_conv_2x2_rows`), then the outputs interleaved into the doubled grid.

    Shape:
        x: ``(B, h, w, C_in)``; returns ``(B, 2h, 2w, C_out)``.
    """
    batch, height, width, _ = x.shape
    y = transposed_conv_2x2_rows(x.reshape(-1, x.shape[-1]), conv).view(batch, height, width, 2, 2, -1)
    return y.permute(0, 1, 3, 2, 4, 5).reshape(batch, 2 * height, 2 * width, -1)


def transposed_conv_2x2_rows(x: torch.Tensor, conv: nn.ConvTranspose2d) -> torch.Tensor:
    """A kernel-2, stride-2 transposed convolution of ``(R, C_in)`` pixels as one matrix product: ``(4 R, C_out)``,
    each pixel's four outputs (its 2x2 block, which no other pixel's overlaps) in rows ordered (row, column)."""
    channels, out = conv.weight.shape[:2]
    weight = conv.weight.permute(0, 2, 3, 1).reshape(channels, 4 * out)  # columns ordered (row, col, channel)
    bias = conv.bias.repeat(4) if conv.bias is not None else x.new_zeros(4 * out)
    return torch.addmm(bias, x, weight).view(-1, out)
