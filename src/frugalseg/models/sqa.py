"""Two-branch segmentation-quality-assessment (SQA) network: segment and predict its own errors.

After Zhang et al. 2023 ("Efficient deep-learning-assisted annotation for medical image segmentation"):
a segmentation network whose probability map, with its decoder features, feeds a spatial and channel-wise
probability attention module and a small head predicting, per pixel, whether the segmentation is wrong.
The predicted error map ranks images for expert review and shows the expert where to look
(see :mod:`frugalseg.quality.scores`).

Segmentation branch: a :class:`~frugalseg.models.unet.UNet` (encoder, decoder and head reused as they are).
Error branch: :class:`~frugalseg.models.attention.ProbabilityAttention` over ``(softmax(logits), decoder
features)`` then a residual conv block and a 1x1 conv to one error logit per pixel.

Gradient policy: by default the probabilities entering the error branch are *detached*: the error loss
must learn to read the segmentation, not reshape it into something easier to grade (which would also
distort its calibration). The decoder features are shared and *not* detached, so the error task also
shapes the representation (the two branches are trained jointly, as in the paper). Set
``detach_probabilities=False`` to let the error loss reach the segmentation logits too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from frugalseg.data.case import IGNORE
from frugalseg.models.attention import ProbabilityAttention
from frugalseg.models.registry import register_model
from frugalseg.models.unet import ConvBlock, UNet, _pad_to_multiple
from frugalseg.quality.error_targets import class_balanced_bce, error_target

__all__ = [
    "SQALoss",
    "SQALossTerms",
    "SQANet",
    "SQAOutput",
    "ce_dice_loss",
    "enable_mc_dropout",
    "sqa_loss",
]


class SQAOutput(NamedTuple):
    """Outputs of :class:`SQANet`.

    Shape:
        ``logits: (B, C, H, W)`` segmentation logits; ``error_logits: (B, 1, H, W)`` logits of the probability
        that each pixel of ``argmax(logits)`` is wrong.
    """

    logits: torch.Tensor
    error_logits: torch.Tensor


class SQANet(nn.Module):
    """U-Net segmentation branch plus a probability-attention error branch.

    Args:
        in_channels: image channels.
        num_classes: segmentation classes, background included.
        channels: U-Net feature channels per level, finest first.
        dropout: spatial dropout rate in the decoder and the error head (> 0 enables MC-dropout, see
            :func:`enable_mc_dropout`).
        reduced_size: grid side of the position attention (memory ``O(reduced_size ** 4)`` per image).
        detach_probabilities: stop the error loss's gradient at the segmentation probabilities (default; see
            the module docstring).

    Shape:
        ``(B, in_channels, H, W) -> SQAOutput(logits (B, num_classes, H, W), error_logits (B, 1, H, W))``;
        any ``H, W`` (padded internally to a multiple of ``2 ** (len(channels) - 1)``).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        channels: Sequence[int] = (16, 32, 64, 128, 256),
        dropout: float = 0.0,
        reduced_size: int = 32,
        detach_probabilities: bool = True,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.channels = tuple(channels)
        self.num_classes = num_classes
        self.detach_probabilities = detach_probabilities
        self.segmenter = UNet(
            in_channels=in_channels, num_classes=num_classes, channels=channels, dropout=dropout
        )
        width = self.channels[0]
        self.attention = ProbabilityAttention(num_classes, width, reduced_size=reduced_size)
        self.error_head = nn.Sequential(ConvBlock(width, width, dropout=dropout), nn.Conv2d(width, 1, 1))

    def forward(self, x: torch.Tensor) -> SQAOutput:
        height, width = x.shape[-2:]
        features, logits = self._decode(x)
        probabilities = torch.softmax(logits, dim=1)
        if self.detach_probabilities:
            probabilities = probabilities.detach()
        error_logits = self.error_head(self.attention(probabilities, features))
        return SQAOutput(logits[..., :height, :width], error_logits[..., :height, :width])

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        """Segmentation logits only (skips the error branch).

        Shape:
            ``(B, in_channels, H, W) -> (B, num_classes, H, W)``.
        """
        height, width = x.shape[-2:]
        return self._decode(x)[1][..., :height, :width]

    def _decode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _pad_to_multiple(x, 2 ** (len(self.channels) - 1))
        features = self.segmenter.decoder(self.segmenter.encode(x))
        return features, self.segmenter.head(features)


def enable_mc_dropout(model: nn.Module) -> int:
    """Put only the dropout layers of ``model`` in training mode (batch norm stays frozen) for MC-dropout.

    Call after ``model.eval()``; each forward pass then samples a different dropout mask.

    Returns:
        The number of dropout layers switched on (0 means the model has no dropout: MC samples will agree).
    """
    count = 0
    for module in model.modules():
        if isinstance(module, nn.Dropout | nn.Dropout2d | nn.Dropout3d):
            module.train()
            count += 1
    return count


class SQALossTerms(NamedTuple):
    """The terms of :func:`sqa_loss`: call ``.total.backward()``; log the other two."""

    total: torch.Tensor
    segmentation: torch.Tensor
    error: torch.Tensor


def ce_dice_loss(logits: torch.Tensor, target: torch.Tensor, *, num_classes: int) -> torch.Tensor:
    """Cross-entropy plus soft Dice over the foreground classes, ignoring ``IGNORE`` pixels.

    Cross-entropy is averaged over labelled pixels; the soft Dice is pooled over the batch (one Dice per
    foreground class, ``1 - mean``) with smoothing ``1e-5``. With no labelled pixel the loss is a zero that
    keeps the graph.

    Shape:
        ``logits: (B, C, H, W)``, ``target: (B, H, W)`` int with values in ``[0, C)`` or ``IGNORE`` -> scalar.
    """
    if logits.ndim != 4 or logits.shape[1] != num_classes:
        raise ValueError(f"expected logits of shape (B, {num_classes}, H, W), got {tuple(logits.shape)}")
    if target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"expected target of shape (B, H, W) matching logits, got {tuple(target.shape)}")
    valid = target != IGNORE
    if not bool(valid.any()):
        return logits.sum() * 0.0
    target = target.long()
    cross_entropy = F.cross_entropy(logits, target, ignore_index=IGNORE)
    probabilities = torch.softmax(logits, dim=1)
    mask = valid.unsqueeze(1).to(probabilities.dtype)
    onehot = F.one_hot(torch.where(valid, target, 0), num_classes).permute(0, 3, 1, 2).to(probabilities.dtype)
    dims = (0, 2, 3)
    intersection = (probabilities * onehot * mask).sum(dims)
    denominator = (probabilities * mask).sum(dims) + (onehot * mask).sum(dims)
    smooth = 1e-5
    dice = (2.0 * intersection + smooth) / (denominator + smooth)
    return cross_entropy + (1.0 - dice[1:].mean())


def sqa_loss(
    output: SQAOutput,
    target: torch.Tensor,
    *,
    num_classes: int,
    seg_loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    error_weight: float = 1.0,
) -> SQALossTerms:
    """Joint loss: segmentation loss plus ``error_weight`` x class-balanced BCE on the error map.

    The error target, ``argmax(logits.detach()) != target`` over labelled pixels, is recomputed at every call
    from the current segmentation (:func:`frugalseg.quality.error_targets.error_target`).

    Args:
        output: the network's :class:`SQAOutput`.
        target: label map, ``IGNORE`` (255) where unlabelled.
        num_classes: segmentation classes.
        seg_loss_fn: ``(logits, target) -> scalar``; default :func:`ce_dice_loss`.
        error_weight: weight of the error term.

    Shape:
        ``output.logits: (B, C, H, W)``, ``output.error_logits: (B, 1, H, W)``, ``target: (B, H, W)``.
    """
    if error_weight < 0:
        raise ValueError(f"error_weight must be >= 0, got {error_weight}")
    logits, error_logits = output
    if logits.ndim != 4 or logits.shape[1] != num_classes:
        raise ValueError(f"expected logits of shape (B, {num_classes}, H, W), got {tuple(logits.shape)}")
    if seg_loss_fn is None:
        segmentation = ce_dice_loss(logits, target, num_classes=num_classes)
    else:
        segmentation = seg_loss_fn(logits, target)
    errors, valid_mask = error_target(logits, target)
    error = class_balanced_bce(error_logits, errors, valid_mask=valid_mask)
    return SQALossTerms(segmentation + error_weight * error, segmentation, error)


class SQALoss(nn.Module):
    """Module form of :func:`sqa_loss` (stores the options)."""

    def __init__(
        self,
        *,
        num_classes: int,
        seg_loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        error_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.seg_loss_fn = seg_loss_fn
        self.error_weight = error_weight

    def forward(self, output: SQAOutput, target: torch.Tensor) -> SQALossTerms:
        return sqa_loss(
            output,
            target,
            num_classes=self.num_classes,
            seg_loss_fn=self.seg_loss_fn,
            error_weight=self.error_weight,
        )


@register_model("sqa_test")
def sqa_test(*, in_channels: int, num_classes: int, **kwargs: object) -> SQANet:
    """Tiny SQA net for the test suite (U-Net channels 4-16 over 3 levels)."""
    return SQANet(in_channels=in_channels, num_classes=num_classes, channels=(4, 8, 16), **kwargs)  # type: ignore[arg-type]


@register_model("sqa_small")
def sqa_small(*, in_channels: int, num_classes: int, **kwargs: object) -> SQANet:
    """SQA net on the ``unet_small`` backbone (16-256 channels over 5 levels)."""
    return SQANet(in_channels=in_channels, num_classes=num_classes, channels=(16, 32, 64, 128, 256), **kwargs)  # type: ignore[arg-type]
