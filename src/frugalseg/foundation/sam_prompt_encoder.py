"""SAM prompt encoder: boxes, points and an optional mask into sparse and dense prompt embeddings.

Written from the description in Kirillov et al., "Segment Anything" (2023). Coordinates here are in the
model's input frame (``input_size``, 256x256 for LiteMedSAM), x = column, y = row, and are shifted by half a
pixel to the pixel centre before encoding. Parameter names follow the checkpoint (``prompt_encoder.*``).
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

from frugalseg.foundation.layers import LayerNorm2d

__all__ = ["PositionEmbeddingRandom", "PromptEncoder", "fourier_encode"]


def fourier_encode(coords: torch.Tensor, gaussian_matrix: torch.Tensor) -> torch.Tensor:
    """Random Fourier features of coordinates normalised to ``[0, 1]``.

    ``[sin(2 pi (2c - 1) G), cos(2 pi (2c - 1) G)]``.

    Shape:
        coords: ``(..., 2)`` xy in [0, 1]; gaussian_matrix: ``(2, F)``; returns ``(..., 2F)``.
    """
    projected = 2.0 * math.pi * ((2.0 * coords - 1.0) @ gaussian_matrix)
    return torch.cat([torch.sin(projected), torch.cos(projected)], dim=-1)


class PositionEmbeddingRandom(nn.Module):
    """Positional encoding with a fixed random Gaussian frequency matrix (a buffer, loaded from checkpoints).

    Args:
        num_pos_feats: ``F``; the encoding has ``2F`` channels.
        seed: seeds the random matrix of a freshly built module.
    """

    positional_encoding_gaussian_matrix: torch.Tensor

    def __init__(self, num_pos_feats: int = 64, *, scale: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer(
            "positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats), generator=generator)
        )

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        """Encoding of the centres of an ``(h, w)`` grid covering [0, 1]^2. Returns ``(2F, h, w)``."""
        height, width = size
        matrix = self.positional_encoding_gaussian_matrix
        ys = (torch.arange(height, device=matrix.device, dtype=torch.float32) + 0.5) / height
        xs = (torch.arange(width, device=matrix.device, dtype=torch.float32) + 0.5) / width
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (h, w, 2) as (x, y)
        return fourier_encode(grid, matrix).permute(2, 0, 1)

    def forward_with_coords(self, coords: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Encode pixel coordinates of a frame of ``image_size = (H, W)``. Shape: ``(B, N, 2)`` -> ``(B, N, 2F)``."""
        scale = torch.tensor([1.0 / image_size[1], 1.0 / image_size[0]], device=coords.device)
        return fourier_encode(coords.float() * scale, self.positional_encoding_gaussian_matrix)


class PromptEncoder(nn.Module):
    """Sparse embeddings for points and box corners, dense embedding for a mask (or the learned no-mask).

    Args:
        embed_dim: embedding width (256).
        image_embedding_size: ``(h, w)`` of the image embedding (64, 64).
        input_image_size: ``(H, W)`` of the model input frame (256, 256).
        mask_in_chans: hidden channels of the mask downscaler (16).
        seed: seeds the random Fourier matrix of a freshly built module.
    """

    def __init__(
        self,
        *,
        embed_dim: int = 256,
        image_embedding_size: tuple[int, int] = (64, 64),
        input_image_size: tuple[int, int] = (256, 256),
        mask_in_chans: int = 16,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = image_embedding_size
        self.input_image_size = input_image_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2, seed=seed)
        # 0: background point, 1: object point, 2: box top-left corner, 3: box bottom-right corner
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def _type_embedding(self, index: int) -> torch.Tensor:
        """The learned embedding of point type ``index`` (see ``point_embeddings``). Shape: ``(1, embed_dim)``."""
        return cast(nn.Embedding, self.point_embeddings[index]).weight

    def get_dense_pe(self) -> torch.Tensor:
        """Positional encoding of the image-embedding grid. Shape: ``(1, embed_dim, h, w)``."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def embed_points(self, points: torch.Tensor, labels: torch.Tensor, *, pad: bool) -> torch.Tensor:
        """Embed points; label -1 (padding) gets only the not-a-point embedding.

        With ``pad=True`` (no box given) one padding point is appended, as SAM was trained.

        Shape:
            points: ``(B, K, 2)`` xy in the input frame; labels: ``(B, K)``; returns ``(B, K (+1), embed_dim)``.
        """
        points = points.float() + 0.5
        if pad:
            points = torch.cat([points, points.new_zeros(points.shape[0], 1, 2)], dim=1)
            labels = torch.cat([labels, labels.new_full((labels.shape[0], 1), -1)], dim=1)
        embedding = self.pe_layer.forward_with_coords(points, self.input_image_size)
        labels = labels[..., None]
        embedding = torch.where(labels == -1, self.not_a_point_embed.weight, embedding)
        embedding = embedding + (labels == 0) * self._type_embedding(0)
        return embedding + (labels == 1) * self._type_embedding(1)

    def embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """Embed each box as its two corners. Shape: ``(B, 4)`` xyxy -> ``(B, 2, embed_dim)``."""
        corners = (boxes.float() + 0.5).reshape(-1, 2, 2)
        embedding = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        corner_type = torch.cat([self._type_embedding(2), self._type_embedding(3)], dim=0)
        return embedding + corner_type

    def forward(
        self,
        *,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        boxes: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed the prompts of ``B`` objects.

        Shape:
            points: ``((B, K, 2), (B, K))``; boxes: ``(B, 4)``; masks: ``(B, 1, 4h, 4w)`` logits.
            Returns sparse ``(B, n_tokens, embed_dim)`` and dense ``(B, embed_dim, h, w)``.
        """
        if points is not None:
            batch = points[0].shape[0]
        elif boxes is not None:
            batch = boxes.shape[0]
        elif masks is not None:
            batch = masks.shape[0]
        else:
            batch = 1
        weight = self.no_mask_embed.weight
        sparse = [weight.new_zeros(batch, 0, self.embed_dim)]
        if points is not None:
            sparse.append(self.embed_points(points[0], points[1], pad=boxes is None))
        if boxes is not None:
            sparse.append(self.embed_boxes(boxes))
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            dense = weight.reshape(1, -1, 1, 1).expand(batch, -1, *self.image_embedding_size)
        return torch.cat(sparse, dim=1), dense
