"""Gated CRF loss: a pairwise Potts regulariser on a local window (Tang et al. 2018; Obukhov et al. 2019).

For pixel pairs ``(i, j)`` with ``j`` in the ``k x k`` window around ``i`` (``j != i``) the loss sums::

    w_ij * g_i * g_j * sum_c p_i[c] * (1 - p_j[c])
    w_ij = exp(-|xy_i - xy_j|**2 / (2 sigma_xy**2) - |I_i - I_j|**2 / (2 sigma_rgb**2))

where ``p = softmax(logits)``, ``I`` the image (all channels), ``g`` the gate (``valid_mask``, e.g. to
exclude padding), and divides by the number of gated pixels of the image. It is the relaxed dense-CRF
(normalised-cut like) loss of Tang et al. ("On regularized losses for weakly-supervised CNN segmentation",
ECCV 2018) restricted to a window, with the gating of Obukhov et al. ("Gated CRF loss for weakly supervised
semantic image segmentation", 2019): it is 0 for a prediction that is constant and certain, and otherwise
small where label changes follow image edges.

To bound memory (``B * C * k**2 * H * W / downsample**2`` values) probabilities, image and gate are first
averaged over ``downsample x downsample`` cells; a cell is gated in only when all of its pixels are valid.
``sigma_xy`` is in pixels of the full-resolution image and ``sigma_rgb`` in image intensity units.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from frugalseg.losses._checks import (
    Reduction,
    check_image,
    check_logits,
    check_pixel_mask,
    check_reduction,
    reduce,
)

__all__ = ["CRFLoss", "crf_loss"]


def _unfold(x: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """``(B, C, h, w) -> (B, C, k*k, h, w)`` neighbourhoods, zero-padded."""
    b, c, h, w = x.shape
    cols = F.unfold(x, kernel_size, padding=kernel_size // 2)
    return cols.view(b, c, kernel_size * kernel_size, h, w)


def crf_loss(
    logits: torch.Tensor,
    image: torch.Tensor,
    *,
    valid_mask: torch.Tensor | None = None,
    kernel_size: int = 5,
    sigma_xy: float = 5.0,
    sigma_rgb: float = 0.1,
    downsample: int = 2,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Gated CRF loss of the softmax of ``logits`` on ``image`` (see the module docstring).

    Args:
        logits: raw class scores.
        image: the network input (or any guidance image), intensities in the units of ``sigma_rgb``.
        valid_mask: pixels taking part (e.g. not padding); ``None`` means all.
        kernel_size: odd window size ``k >= 3``, in down-sampled pixels.
        sigma_xy: spatial kernel width, full-resolution pixels, ``> 0``.
        sigma_rgb: intensity kernel width, ``> 0``.
        downsample: integer down-sampling factor ``>= 1`` applied before pairing.
        reduction: over images: ``"mean"``, ``"sum"``, or ``"none"`` for per-image losses.

    Shape:
        ``logits (B, C, H, W)``, ``image (B, C_img, H, W)``, ``valid_mask (B, H, W)`` bool
        -> scalar, or ``(B,)``.
    """
    batch, _, height, width = check_logits(logits, min_classes=2)
    check_reduction(reduction)
    check_image(image, logits)
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 3 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size={kernel_size!r}: expected an odd integer >= 3")
    if isinstance(downsample, bool) or not isinstance(downsample, int) or downsample < 1:
        raise ValueError(f"downsample={downsample!r}: expected an integer >= 1")
    for name, sigma in (("sigma_xy", sigma_xy), ("sigma_rgb", sigma_rgb)):
        if not (sigma > 0 and math.isfinite(sigma)):
            raise ValueError(f"{name}={sigma}: expected a finite positive number")
    valid = check_pixel_mask(valid_mask, (batch, height, width), device=logits.device)

    probs = torch.softmax(logits, dim=1)
    guide = image.to(device=logits.device, dtype=logits.dtype)
    gate = valid.to(logits.dtype).unsqueeze(1)
    if downsample > 1:
        size = (math.ceil(height / downsample), math.ceil(width / downsample))
        probs = F.adaptive_avg_pool2d(probs, size)
        guide = F.adaptive_avg_pool2d(guide, size)
        gate = (F.adaptive_avg_pool2d(gate, size) >= 1.0 - 1e-6).to(logits.dtype)

    k = kernel_size
    offsets = torch.arange(k, device=logits.device, dtype=logits.dtype) - k // 2
    squared = (offsets.view(k, 1).square() + offsets.view(1, k).square()).reshape(k * k) * downsample**2
    spatial = (-squared / (2.0 * sigma_xy**2)).view(1, k * k, 1, 1)

    guide_n = _unfold(guide, k)
    colour = (guide_n - guide.unsqueeze(2)).square().sum(dim=1)
    kernel = torch.exp(spatial - colour / (2.0 * sigma_rgb**2))
    centre = torch.zeros(k * k, dtype=torch.bool, device=logits.device)
    centre[(k * k) // 2] = True
    kernel = kernel.masked_fill(centre.view(1, k * k, 1, 1), 0.0)

    gate_n = _unfold(gate, k).squeeze(1)
    weight = kernel * gate_n * gate
    disagreement = (probs.unsqueeze(2) * (1.0 - _unfold(probs, k))).sum(dim=1)
    per_image = (weight * disagreement).sum(dim=(1, 2, 3)) / gate.sum(dim=(1, 2, 3)).clamp_min(1.0)
    return reduce(per_image, reduction)


class CRFLoss(nn.Module):
    """Module form of :func:`crf_loss`; stores its options only."""

    def __init__(
        self,
        *,
        kernel_size: int = 5,
        sigma_xy: float = 5.0,
        sigma_rgb: float = 0.1,
        downsample: int = 2,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        self.kernel_size = kernel_size
        self.sigma_xy = sigma_xy
        self.sigma_rgb = sigma_rgb
        self.downsample = downsample
        self.reduction: Reduction = reduction

    def forward(
        self, logits: torch.Tensor, image: torch.Tensor, valid_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return crf_loss(
            logits,
            image,
            valid_mask=valid_mask,
            kernel_size=self.kernel_size,
            sigma_xy=self.sigma_xy,
            sigma_rgb=self.sigma_rgb,
            downsample=self.downsample,
            reduction=self.reduction,
        )
