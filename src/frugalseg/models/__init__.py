"""Segmentation networks behind one registry."""

from frugalseg.models.registry import create_model, has_pretrained_weights, list_models, register_model

__all__ = ["create_model", "has_pretrained_weights", "list_models", "register_model"]
