"""The interface every promptable foundation-model backend implements.

Embeddings are values: ``embedding = segmenter.encode(image)`` returns everything ``predict`` needs, and the
segmenter keeps no per-image state (no ``set_image``), so a stale embedding can never be used by mistake.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from frugalseg.foundation.prompts import Embedding, MaskPrediction, Prompts

__all__ = ["PromptableSegmenter"]


@runtime_checkable
class PromptableSegmenter(Protocol):
    """Boxes/points in, one mask per object out.

    Attributes:
        model_id: short name of the backend and its input geometry (e.g. ``"litemedsam"``).
        weights_sha256: identity of the weights that produce the embeddings (the checkpoint's sha256, or a
            fingerprint of the parameters when built without a checkpoint); embedding caches key on it.
    """

    @property
    def model_id(self) -> str: ...

    @property
    def weights_sha256(self) -> str: ...

    def encode(self, image: np.ndarray) -> Embedding:
        """Run the image encoder once on ``image`` (``(H, W)`` grey or ``(H, W, C)`` colour)."""
        ...

    def predict(self, embedding: Embedding, prompts: Prompts) -> MaskPrediction:
        """Decode one mask per object of ``prompts`` (coordinates in the original image of ``embedding``)."""
        ...
