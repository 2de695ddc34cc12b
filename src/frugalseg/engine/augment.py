"""Batched on-the-fly augmentation: parameters are sampled from a generator, then applied.

Spatial: random rotation, isotropic scale, translation and flips through one affine grid (images bilinear,
labels nearest). Intensity: contrast, brightness, gamma and Gaussian noise. All on ``(B, C, H, W)`` tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from frugalseg.data.case import IGNORE

__all__ = ["AugmentParams", "apply_augmentation", "augment_batch", "sample_augmentation"]


@dataclass(frozen=True)
class AugmentParams:
    """Sampled parameters for a batch: ``theta (B, 2, 3)`` affine, per-image intensity factors ``(B,)``."""

    theta: torch.Tensor
    contrast: torch.Tensor
    brightness: torch.Tensor
    gamma: torch.Tensor
    noise_std: torch.Tensor


def sample_augmentation(
    batch: int,
    *,
    generator: torch.Generator,
    max_rotation_deg: float = 30.0,
    scale_range: tuple[float, float] = (0.85, 1.2),
    max_translation: float = 0.08,
) -> AugmentParams:
    """Draw augmentation parameters for ``batch`` images."""

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(batch, generator=generator)

    angle = uniform(-max_rotation_deg, max_rotation_deg) * math.pi / 180
    scale = uniform(*scale_range)
    flip_x = torch.where(torch.rand(batch, generator=generator) < 0.5, -1.0, 1.0)
    flip_y = torch.where(torch.rand(batch, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip_x, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip_x, cos
    theta[:, 1, :2] *= flip_y[:, None]
    theta[:, :, 2] = (2 * torch.rand(batch, 2, generator=generator) - 1) * 2 * max_translation
    return AugmentParams(
        theta=theta,
        contrast=uniform(0.75, 1.25),
        brightness=uniform(-0.2, 0.2),
        gamma=torch.exp(uniform(-0.3, 0.3)),
        noise_std=uniform(0.0, 0.1),
    )


def apply_augmentation(
    images: torch.Tensor, labels: torch.Tensor, params: AugmentParams, *, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply sampled parameters to z-scored images and their label maps.

    Shape:
        images ``(B, C, H, W)``, labels ``(B, H, W)`` int64 -> same shapes. Pixels mapped from outside the
        image become ``IGNORE`` in the labels and the image's minimum in the images.
    """
    grid = F.affine_grid(params.theta, list(images.shape), align_corners=False)
    low = images.amin(dim=(1, 2, 3), keepdim=True)
    warped = F.grid_sample(images - low, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + low
    shifted = (labels + 1).unsqueeze(1).float()  # 0 marks "outside the source image"
    warped_labels = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    warped_labels = warped_labels.squeeze(1).long() - 1
    warped_labels[warped_labels < 0] = IGNORE

    unit = (warped - low) / (warped.amax(dim=(1, 2, 3), keepdim=True) - low).clamp_min(1e-6)
    unit = unit.clamp_min(0) ** params.gamma.view(-1, 1, 1, 1)
    out = unit * params.contrast.view(-1, 1, 1, 1) + params.brightness.view(-1, 1, 1, 1)
    noise = torch.randn(out.shape, generator=generator) * params.noise_std.view(-1, 1, 1, 1)
    out = out + noise
    mean = out.mean(dim=(2, 3), keepdim=True)
    std = out.std(dim=(2, 3), keepdim=True).clamp_min(1e-6)
    return (out - mean) / std, warped_labels


def augment_batch(
    images: torch.Tensor, labels: torch.Tensor, *, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample then apply a random augmentation to a batch."""
    params = sample_augmentation(images.shape[0], generator=generator)
    return apply_augmentation(images, labels, params, generator=generator)
