"""Segmentation networks behind one registry."""

from frugalseg.models.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
