"""On-disk cache of image embeddings, so each image goes through the (slow) image encoder once.

An entry's key is the sha256 of the image's bytes, shape and dtype, the model id, the weights' sha256 and the
frugalseg version: changing any of them makes a new entry, never a stale hit. Entries are written atomically
and read with ``torch.load(weights_only=True)``; an unreadable or inconsistent entry is logged, removed and
recomputed.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from frugalseg import __version__
from frugalseg.atomic import atomic_torch_save
from frugalseg.foundation.prompts import Embedding, MaskPrediction, Prompts
from frugalseg.foundation.protocol import PromptableSegmenter
from frugalseg.foundation.zoom import zoom_context

__all__ = ["CachedSegmenter", "EmbeddingCache", "embedding_key"]

_LOG = logging.getLogger(__name__)
_FORMAT = 1


def embedding_key(image: np.ndarray, *, model_id: str, weights_sha256: str, version: str = __version__) -> str:
    """Hex sha256 naming the embedding of ``image`` by one model, weights and frugalseg version."""
    array = np.ascontiguousarray(image)
    digest = hashlib.sha256()
    header = f"frugalseg-embedding/{_FORMAT}|{version}|{model_id}|{weights_sha256}|{array.dtype.str}|{array.shape}|"
    digest.update(header.encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


class EmbeddingCache:
    """A folder of embeddings, one file per key: ``<root>/<key[:2]>/<key>.pt``.

    Args:
        root: the cache folder (created on first write).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """File of the entry ``key``."""
        if len(key) != 64 or any(char not in "0123456789abcdef" for char in key):
            raise ValueError(f"cache key must be 64 lowercase hex characters, got {key!r}")
        return self.root / key[:2] / f"{key}.pt"

    def load(self, key: str) -> Embedding | None:
        """The cached embedding, or ``None`` when absent or unusable (an unusable file is removed)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            return _embedding_from_entry(entry, key)
        except (
            RuntimeError,
            EOFError,
            OSError,
            ValueError,
            KeyError,
            TypeError,
            pickle.UnpicklingError,
            zipfile.BadZipFile,
        ) as error:
            _LOG.warning("embedding cache entry %s is unreadable (%s); recomputing it", path, error)
            path.unlink(missing_ok=True)
            return None

    def save(self, key: str, embedding: Embedding) -> Path:
        """Write ``embedding`` atomically under ``key``; returns the file."""
        entry = {
            "format": _FORMAT,
            "key": key,
            "model_id": embedding.model_id,
            "original_size": list(embedding.original_size),
            "resized_size": list(embedding.resized_size),
            "features": embedding.features.detach().to("cpu", torch.float32).contiguous(),
        }
        return atomic_torch_save(self.path(key), entry)


def _embedding_from_entry(entry: Any, key: str) -> Embedding:
    """Check a loaded entry and turn it into an :class:`Embedding`; ``ValueError`` when it is inconsistent."""
    if not isinstance(entry, dict) or entry.get("format") != _FORMAT or entry.get("key") != key:
        raise ValueError("not a frugalseg embedding entry for this key")
    features = entry["features"]
    if not isinstance(features, torch.Tensor) or not features.is_floating_point() or features.ndim != 4:
        raise ValueError("features are not a float (1, C, h, w) tensor")
    if not torch.isfinite(features).all():
        raise ValueError("features hold non-finite values")
    return Embedding(
        features=features,
        original_size=tuple(entry["original_size"]),
        resized_size=tuple(entry["resized_size"]),
        model_id=str(entry["model_id"]),
    )


class CachedSegmenter:
    """A :class:`PromptableSegmenter` whose ``encode`` goes through an :class:`EmbeddingCache`.

    Attributes:
        hits, misses: counts of ``encode`` calls served from / added to the cache.
    """

    def __init__(self, segmenter: PromptableSegmenter, cache: EmbeddingCache) -> None:
        self.segmenter = segmenter
        self.cache = cache
        self.hits = 0
        self.misses = 0

    @property
    def model_id(self) -> str:
        return self.segmenter.model_id

    @property
    def weights_sha256(self) -> str:
        return self.segmenter.weights_sha256

    @property
    def zoom(self) -> float:
        """The wrapped segmenter's zoom context (:mod:`frugalseg.foundation.zoom`; 0: whole images)."""
        return zoom_context(self.segmenter)

    def key(self, image: np.ndarray) -> str:
        """Cache key of ``image`` for the wrapped segmenter."""
        return embedding_key(image, model_id=self.model_id, weights_sha256=self.weights_sha256)

    def encode(self, image: np.ndarray) -> Embedding:
        """The cached embedding of ``image``, computed and stored on a miss."""
        key = self.key(image)
        embedding = self.cache.load(key)
        if (
            embedding is not None
            and embedding.model_id == self.model_id
            and embedding.original_size == tuple(np.shape(image)[:2])
        ):
            self.hits += 1
            return embedding
        self.misses += 1
        embedding = self.segmenter.encode(image)
        self.cache.save(key, embedding)
        return embedding

    def predict(self, embedding: Embedding, prompts: Prompts) -> MaskPrediction:
        """Delegates to the wrapped segmenter."""
        return self.segmenter.predict(embedding, prompts)
