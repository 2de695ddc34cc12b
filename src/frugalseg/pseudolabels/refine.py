"""Iterative pseudo-label refinement: threshold -> train a segmenter -> re-estimate, handed callables.

The loop owns no model and no training code: ``fit`` trains a segmenter on pseudo-labels and returns it,
``estimate`` turns a trained segmenter into new pseudo-labels (typically :func:`labels_from_probabilities` on
its predictions, restricted to the classes each image is tagged with). Used with CAM pseudo-masks for tags
(Ahn & Kwak 2018 and most tag-supervised pipelines re-train on their own refined masks), and usable for any
generator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

from frugalseg.data.case import IGNORE

__all__ = ["labels_from_probabilities", "refine_pseudo_labels"]

Model = TypeVar("Model")
Labels = TypeVar("Labels")


def refine_pseudo_labels(
    labels: Labels,
    *,
    fit: Callable[[Labels, int], Model],
    estimate: Callable[[Model, int], Labels],
    rounds: int = 1,
) -> tuple[Model, Labels]:
    """Train on ``labels``, then ``rounds`` times re-estimate the labels with the model and train again.

    Args:
        labels: the initial pseudo-labels (any value ``fit`` accepts, e.g. ``(label, weight)`` tensors).
        fit: ``fit(labels, round)`` trains and returns a model (round 0 is the initial training).
        estimate: ``estimate(model, round)`` returns the pseudo-labels for round ``round`` (1..rounds).
        rounds: number of re-estimations, ``>= 0`` (``0``: a single training on ``labels``).

    Returns:
        ``(model, labels)``: the last model and the labels it was trained on.
    """
    if rounds < 0:
        raise ValueError(f"rounds={rounds}: expected an integer >= 0")
    model = fit(labels, 0)
    for round_index in range(1, rounds + 1):
        labels = estimate(model, round_index)
        model = fit(labels, round_index)
    return model, labels


def labels_from_probabilities(
    probabilities: torch.Tensor,
    *,
    allowed: torch.Tensor | None = None,
    min_confidence: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-labels from class probabilities, optionally restricted to allowed classes per image.

    The probabilities of classes not allowed (e.g. not tagged) are removed and the rest renormalised; the
    label is the argmax and the confidence the margin between the two largest renormalised probabilities.
    Pixels below ``min_confidence`` become ``IGNORE``.

    Args:
        probabilities: softmax outputs.
        allowed: which classes each image may hold; ``None`` means all. Background should be allowed.
        min_confidence: margin below which a pixel is dropped.

    Returns:
        ``(label, confidence)``: ``int64`` and ``float32`` maps.

    Shape:
        ``probabilities (N, C, H, W)``, ``allowed (N, C)`` bool -> ``(N, H, W)``, ``(N, H, W)``.
    """
    if probabilities.ndim != 4:
        raise ValueError(f"probabilities shape {tuple(probabilities.shape)}: expected (N, C, H, W)")
    probs = probabilities.float()
    if allowed is not None:
        if allowed.shape != probs.shape[:2] or allowed.dtype != torch.bool:
            raise ValueError(
                f"allowed {tuple(allowed.shape)} {allowed.dtype}: expected (N, C) = {tuple(probs.shape[:2])} bool"
            )
        probs = probs * allowed[:, :, None, None].to(probs.dtype)
        probs = probs / probs.sum(dim=1, keepdim=True).clamp_min(1e-12)
    if probs.shape[1] == 1:
        return torch.zeros(probs.shape[0], *probs.shape[2:], dtype=torch.long), torch.ones_like(probs[:, 0])
    top2 = probs.topk(2, dim=1)
    label = top2.indices[:, 0].clone()
    confidence = (top2.values[:, 0] - top2.values[:, 1]).float()
    label[confidence < min_confidence] = IGNORE
    return label, confidence
