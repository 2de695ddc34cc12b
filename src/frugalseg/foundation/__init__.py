"""Promptable foundation models: boxes/points in, masks out (LiteMedSAM backend, embedding cache)."""

from frugalseg.foundation.cache import CachedSegmenter, EmbeddingCache
from frugalseg.foundation.litemedsam import LiteMedSAM, LiteMedSAMSegmenter
from frugalseg.foundation.prompts import Embedding, MaskPrediction, Prompts
from frugalseg.foundation.protocol import PromptableSegmenter

__all__ = [
    "CachedSegmenter",
    "Embedding",
    "EmbeddingCache",
    "LiteMedSAM",
    "LiteMedSAMSegmenter",
    "MaskPrediction",
    "PromptableSegmenter",
    "Prompts",
]
