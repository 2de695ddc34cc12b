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

Calibration: the error head is trained with class-balanced BCE, so it estimates the error posterior under
a 50/50 prior. The network keeps, as the buffer ``error_prevalence`` (saved with its weights), the fraction
of wrong pixels it was trained on (:meth:`SQANet.record_error_prevalence`, a running mean over training
steps); :meth:`SQANet.error_prior_shift` is the logit shift ``log(pi / (1 - pi))`` that restores that prior
(Bayes' prior correction, Saerens et al., Neural Computation 2002; Elkan, IJCAI 2001).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from frugalseg.models.attention import ProbabilityAttention
from frugalseg.models.registry import register_model
from frugalseg.models.unet import ConvBlock, UNet, _pad_to_multiple

__all__ = [
    "SQANet",
    "SQAOutput",
    "enable_mc_dropout",
    "prior_logit_shift",
]


def prior_logit_shift(prevalence: float) -> float:
    """Logit shift ``log(pi / (1 - pi))`` that moves a posterior from a 50/50 prior to the prior ``pi``.

    Raises:
        ValueError: ``prevalence`` outside ``(0, 1)``.
    """
    if not 0.0 < prevalence < 1.0:
        raise ValueError(f"error_prevalence must lie in (0, 1), got {prevalence}")
    return math.log(prevalence / (1.0 - prevalence))


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

    error_prevalence: torch.Tensor

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
        self.segmenter = UNet(in_channels=in_channels, num_classes=num_classes, channels=channels, dropout=dropout)
        width = self.channels[0]
        self.attention = ProbabilityAttention(num_classes, width, reduced_size=reduced_size)
        self.error_head = nn.Sequential(ConvBlock(width, width, dropout=dropout), nn.Conv2d(width, 1, 1))
        self.register_buffer("error_prevalence", torch.tensor(math.nan))

    def record_error_prevalence(self, fraction: float, *, momentum: float = 0.95) -> None:
        """Fold one training step's fraction of wrong pixels into the running mean ``error_prevalence``.

        The first value is taken as it is; later ones as ``m * running + (1 - m) * fraction``, so the mean
        follows the error rate of the last few dozen steps (the network as trained, not as initialised).
        """
        if not (math.isfinite(fraction) and 0.0 <= fraction <= 1.0):
            raise ValueError(f"error fraction must lie in [0, 1], got {fraction}")
        running = float(self.error_prevalence)
        self.error_prevalence.fill_(fraction if math.isnan(running) else momentum * running + (1 - momentum) * fraction)

    def error_prior_shift(self) -> float:
        """Logit shift ``log(pi / (1 - pi))`` from the balanced prior to the trained error prevalence ``pi``.

        ``pi`` is clipped to ``[1e-4, 1 - 1e-4]``; 0 (no shift) for a network never trained through
        :meth:`record_error_prevalence`.
        """
        prevalence = float(self.error_prevalence)
        return 0.0 if math.isnan(prevalence) else prior_logit_shift(min(max(prevalence, 1e-4), 1 - 1e-4))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # weights saved before the prevalence was recorded load as "unknown" (no calibration shift)
        state_dict.setdefault(prefix + "error_prevalence", torch.tensor(math.nan))
        super()._load_from_state_dict(state_dict, prefix, *args)

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


@register_model("sqa_test")
def sqa_test(*, in_channels: int, num_classes: int, **kwargs: object) -> SQANet:
    """Tiny SQA net for the test suite (U-Net channels 4-16 over 3 levels)."""
    return SQANet(in_channels=in_channels, num_classes=num_classes, channels=(4, 8, 16), **kwargs)  # type: ignore[arg-type]


@register_model("sqa_small")
def sqa_small(*, in_channels: int, num_classes: int, **kwargs: object) -> SQANet:
    """SQA net on the ``unet_small`` backbone (16-256 channels over 5 levels)."""
    return SQANet(in_channels=in_channels, num_classes=num_classes, channels=(16, 32, 64, 128, 256), **kwargs)  # type: ignore[arg-type]
