"""Bounding-box tightness prior as multiple-instance learning (MIL).

Hsu et al. 2019 (BBTP, "Weakly supervised instance segmentation using the bounding box tightness prior") and
Wang & Xia 2021 ("Bounding box tightness prior for weakly supervised image segmentation", generalised MIL
with smooth maximum approximation). A tight box touches its object on all four sides, so **every row and
every column crossing a box contains at least one pixel of the box's class**:

* positive bags: for every box of class ``c``, each of its rows and each of its columns (the pixels of that
  line inside the box); a bag's score is a smooth maximum of ``p_c`` along the line and its loss is
  ``-log(score)``;
* negative bags: every pixel outside all boxes of class ``c`` (and inside ``valid_mask``) is a one-pixel
  negative bag with loss ``-log(1 - p_c)`` (the "emptiness" term).

Per image, the loss is the sum over foreground classes of the mean positive-bag loss plus
``negative_weight`` times the mean negative-bag loss (a mean over an empty set counts 0). ``p = softmax``.
Angled bags (Wang & Xia's optional extension) are not implemented.

Smooth maxima of ``x`` (the ``n`` probabilities of one line), all tending to ``max(x)`` as ``alpha -> inf``:

* ``"softmax"`` (alpha-softmax): ``sum(x * exp(alpha x)) / sum(exp(alpha x))`` — a lower bound of the max;
* ``"quasimax"`` (alpha-quasimax): ``(log(sum(exp(alpha x))) - log(n)) / alpha`` — a lower bound of the max;
* ``"logsumexp"``: ``log(sum(exp(alpha x))) / alpha`` — an upper bound, clipped at 1 before the log.

**What it reduces to with complete labels.** When each object is exactly its box (a rectangle), the
negative term is the background half of per-class binary cross-entropy over the pixels outside the boxes,
and as ``alpha -> inf`` the positive term becomes ``-log max p_c`` along each line. Both terms are 0 at the
perfect prediction, which is therefore a global minimiser. It does not become cross-entropy: a finite
``alpha`` favours filling the box, but any mask meeting every line of the box and nothing outside it
scores close to 0, which is why it is paired with a smoothness loss (CRF, TV) in practice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from frugalseg.losses._checks import Reduction, check_logits, check_pixel_mask, check_reduction, reduce
from frugalseg.losses._ops import log1mexp
from frugalseg.losses.boxes import BoxLike, box_mask, box_pixel_span, check_boxes

__all__ = ["BoxTightnessLoss", "SmoothMax", "box_tightness_loss", "log_smooth_max"]

SmoothMax = Literal["softmax", "quasimax", "logsumexp"]
_SMOOTH_MAXIMA = ("softmax", "quasimax", "logsumexp")


def log_smooth_max(
    probs: torch.Tensor,
    log_probs: torch.Tensor,
    *,
    dim: int,
    smooth_max: SmoothMax = "softmax",
    alpha: float = 4.0,
) -> torch.Tensor:
    """Logarithm of a smooth maximum of ``probs`` along ``dim``, clipped to ``<= 0`` (score ``<= 1``).

    ``log_probs`` must be ``log(probs)`` (used by ``"softmax"`` to stay in log space).

    Shape:
        ``probs``, ``log_probs``: any shape ``S`` -> ``S`` without ``dim``.
    """
    if smooth_max == "softmax":
        scaled = alpha * probs
        out = torch.logsumexp(log_probs + scaled, dim=dim) - torch.logsumexp(scaled, dim=dim)
    elif smooth_max == "quasimax":
        # m + log(mean(exp(alpha (x - m)))) / alpha, with log1p/expm1 so small probabilities stay accurate.
        top = probs.amax(dim=dim, keepdim=True)
        spread = torch.log1p(torch.expm1(alpha * (probs - top)).mean(dim=dim)) / alpha
        score = top.squeeze(dim) + spread
        out = torch.log(score.clamp_min(torch.finfo(probs.dtype).tiny))
    elif smooth_max == "logsumexp":
        score = torch.logsumexp(alpha * probs, dim=dim) / alpha
        out = torch.log(score.clamp_min(torch.finfo(probs.dtype).tiny))
    else:
        raise ValueError(f"smooth_max={smooth_max!r}: expected one of {', '.join(map(repr, _SMOOTH_MAXIMA))}")
    return out.clamp_max(0.0)


def box_tightness_loss(
    logits: torch.Tensor,
    boxes: Sequence[Sequence[BoxLike]],
    *,
    valid_mask: torch.Tensor | None = None,
    smooth_max: SmoothMax = "softmax",
    alpha: float = 4.0,
    negative_weight: float = 1.0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """MIL loss of the box tightness prior (see the module docstring).

    Args:
        logits: raw class scores; class 0 is background.
        boxes: one list per image of boxes with ``xmin, ymin, xmax, ymax, label`` (pixels, max exclusive;
            :class:`frugalseg.data.case.Box`). Box labels are foreground classes ``1..C-1``.
        valid_mask: pixels whose box annotation is known; only these can be negative bags. ``None`` means
            all pixels (the boxes of every image are complete). Positive bags are never masked.
        smooth_max: ``"softmax"``, ``"quasimax"`` or ``"logsumexp"`` bag score.
        alpha: sharpness of the smooth maximum, ``> 0``.
        negative_weight: weight of the negative (outside-box) term.
        reduction: over images: ``"mean"``, ``"sum"``, or ``"none"`` for per-image losses.

    Shape:
        ``logits (B, C, H, W)``, ``boxes`` ``B`` lists, ``valid_mask (B, H, W)`` bool -> scalar, or ``(B,)``.
    """
    batch, num_classes, height, width = check_logits(logits, min_classes=2)
    check_reduction(reduction)
    if smooth_max not in _SMOOTH_MAXIMA:
        raise ValueError(f"smooth_max={smooth_max!r}: expected one of {', '.join(map(repr, _SMOOTH_MAXIMA))}")
    if not (alpha > 0 and math.isfinite(alpha)):
        raise ValueError(f"alpha={alpha}: expected a finite positive number")
    check_boxes(boxes, batch_size=batch, num_classes=num_classes)
    valid = check_pixel_mask(valid_mask, (batch, height, width), device=logits.device)

    log_probs = torch.log_softmax(logits, dim=1)
    probs = log_probs.exp()

    inside = box_mask(boxes, num_classes=num_classes, height=height, width=width, device=logits.device)
    negative = (valid.unsqueeze(1) & ~inside)[:, 1:].to(logits.dtype)
    negative_nll = -log1mexp(log_probs[:, 1:]) * negative
    negative_loss = negative_nll.sum(dim=(2, 3)) / negative.sum(dim=(2, 3)).clamp_min(1.0)

    positive_terms: list[torch.Tensor] = []
    for index, image_boxes in enumerate(boxes):
        bags: dict[int, list[torch.Tensor]] = {}
        for box in image_boxes:
            x0, y0, x1, y1 = box_pixel_span(box, height=height, width=width)
            if x1 <= x0 or y1 <= y0:
                continue
            label = int(box.label)
            p = probs[index, label, y0:y1, x0:x1]
            log_p = log_probs[index, label, y0:y1, x0:x1]
            rows = log_smooth_max(p, log_p, dim=1, smooth_max=smooth_max, alpha=alpha)
            cols = log_smooth_max(p, log_p, dim=0, smooth_max=smooth_max, alpha=alpha)
            bags.setdefault(label, []).append(torch.cat([rows, cols]))
        image_loss = logits.new_zeros(())
        for class_bags in bags.values():
            image_loss = image_loss - torch.cat(class_bags).mean()
        positive_terms.append(image_loss)
    positive_loss = torch.stack(positive_terms) if positive_terms else logits.new_zeros((0,))

    per_image = positive_loss + negative_weight * negative_loss.sum(dim=1)
    return reduce(per_image, reduction)


class BoxTightnessLoss(nn.Module):
    """Module form of :func:`box_tightness_loss`; stores its options only."""

    def __init__(
        self,
        *,
        smooth_max: SmoothMax = "softmax",
        alpha: float = 4.0,
        negative_weight: float = 1.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        if smooth_max not in _SMOOTH_MAXIMA:
            raise ValueError(f"smooth_max={smooth_max!r}: expected one of {', '.join(map(repr, _SMOOTH_MAXIMA))}")
        self.smooth_max: SmoothMax = smooth_max
        self.alpha = alpha
        self.negative_weight = negative_weight
        self.reduction: Reduction = reduction

    def forward(
        self,
        logits: torch.Tensor,
        boxes: Sequence[Sequence[BoxLike]],
        valid_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return box_tightness_loss(
            logits,
            boxes,
            valid_mask=valid_mask,
            smooth_max=self.smooth_max,
            alpha=self.alpha,
            negative_weight=self.negative_weight,
            reduction=self.reduction,
        )
