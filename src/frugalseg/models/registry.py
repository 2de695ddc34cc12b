"""One registry of segmentation networks, one factory (``create_model`` / ``list_models``).

Every registered builder takes ``in_channels`` and ``num_classes`` (keyword-only) and returns an
``nn.Module`` mapping ``(B, in_channels, H, W)`` to logits ``(B, num_classes, H, W)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

__all__ = ["create_model", "has_pretrained_weights", "list_models", "register_model"]

ModelBuilder = Callable[..., nn.Module]
_REGISTRY: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator registering a builder under one canonical snake_case ``name``; duplicates raise."""

    def decorator(builder: ModelBuilder) -> ModelBuilder:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is already registered")
        _REGISTRY[name] = builder
        return builder

    return decorator


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    _load_builtin_models()
    return sorted(_REGISTRY)


def create_model(name: str, *, in_channels: int = 1, num_classes: int = 2, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name``.

    Raises:
        ValueError: ``name`` is not registered (the message lists the known names).
    """
    _load_builtin_models()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(sorted(_REGISTRY))}")
    if in_channels < 1 or num_classes < 2:
        raise ValueError(f"expected in_channels >= 1 and num_classes >= 2, got {in_channels} and {num_classes}")
    return _REGISTRY[name](in_channels=in_channels, num_classes=num_classes, **kwargs)


def has_pretrained_weights(name: str) -> bool:
    """Whether the builder registered as ``name`` takes ``pretrained=True``."""
    _load_builtin_models()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(sorted(_REGISTRY))}")
    return "pretrained" in inspect.signature(_REGISTRY[name]).parameters


def _load_builtin_models() -> None:
    """Import the modules whose decorators fill the registry (kept lazy: no work at package import)."""
    from frugalseg.models import effl0, sqa, unet  # noqa: F401
