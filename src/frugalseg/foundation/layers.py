"""Small building blocks shared by the image encoder and the mask decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MLP", "LayerNorm2d", "layer_norm_2d"]


def layer_norm_2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, eps: float = 1e-6) -> torch.Tensor:
    """Layer norm over the channel axis of a feature map, with a per-channel affine.

    Shape:
        x: ``(B, C, H, W)``; weight, bias: ``(C,)``; returns ``(B, C, H, W)``.
    """
    mean = x.mean(1, keepdim=True)
    var = (x - mean).pow(2).mean(1, keepdim=True)
    x = (x - mean) / torch.sqrt(var + eps)
    return weight[:, None, None] * x + bias[:, None, None]


class LayerNorm2d(nn.Module):
    """Module form of :func:`layer_norm_2d` (parameters ``weight`` and ``bias``)."""

    def __init__(self, num_channels: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm_2d(x, self.weight, self.bias, eps=self.eps)


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them (none after the last).

    Shape:
        x: ``(..., input_dim)``; returns ``(..., output_dim)``.
    """

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(n_in, n_out) for n_in, n_out in zip(dims_in, dims_out, strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < last:
                x = F.relu(x)
        return x
