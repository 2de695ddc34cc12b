"""Per-class post-processing of label maps, chosen on validation cases (as nnU-Net chooses its clean-up).

Options per foreground class:
- ``"none"``: the argmax as it is;
- ``"largest"``: keep the largest connected component, fill background holes inside it;
- ``"ellipse"``: replace the largest component by the ellipse with the same second moments (a shape prior
  for structures that are ellipses by definition, such as a fetal head outline).
Only background pixels are ever filled, so a class nested in another (lumen in vessel wall) is not overwritten.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from scipy import ndimage
from skimage.draw import ellipse
from skimage.measure import regionprops

__all__ = ["POSTPROCESS_OPTIONS", "apply_postprocess", "choose_postprocess", "largest_component", "moment_ellipse"]

POSTPROCESS_OPTIONS = ("none", "largest", "ellipse")


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a boolean mask, with its holes filled."""
    components, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count > 1:
        sizes = np.bincount(components.ravel())[1:]
        mask = components == 1 + int(np.argmax(sizes))
    return ndimage.binary_fill_holes(mask)


def moment_ellipse(mask: np.ndarray) -> np.ndarray:
    """The filled ellipse with the centroid, orientation and second moments of the largest component."""
    region = largest_component(mask)
    if region.sum() < 5:
        return region
    props = regionprops(region.astype(np.uint8))[0]
    row, col = props.centroid
    rows, cols = ellipse(
        row,
        col,
        props.axis_major_length / 2,
        props.axis_minor_length / 2,
        shape=mask.shape,
        rotation=props.orientation,
    )
    out = np.zeros_like(mask, dtype=bool)
    out[rows, cols] = True
    return out


_SHAPES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"largest": largest_component, "ellipse": moment_ellipse}


def apply_postprocess(label: np.ndarray, choice: Mapping[int, str]) -> np.ndarray:
    """Apply the per-class ``choice`` (class index -> option) to an ``(H, W)`` label map."""
    out = label.copy()
    for cls, option in choice.items():
        if option == "none":
            continue
        current = out == cls
        shaped = _SHAPES[option](current)
        out[current & ~shaped] = 0
        out[shaped & (out == 0)] = cls
    return out


def choose_postprocess(
    predictions: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    *,
    num_classes: int,
    score: Callable[[np.ndarray, np.ndarray], float],
) -> dict[int, str]:
    """For each foreground class, the option with the best mean ``score(pred_mask, true_mask)`` on validation.

    ``"none"`` wins ties, so a clean-up is adopted only when it helps.
    """
    choice = {}
    for cls in range(1, num_classes):
        means = {}
        for option in POSTPROCESS_OPTIONS:
            scores = [
                score(apply_postprocess(pred, {cls: option}) == cls, truth == cls)
                for pred, truth in zip(predictions, truths, strict=True)
            ]
            means[option] = float(np.mean(scores))
        best = max(POSTPROCESS_OPTIONS, key=lambda option: (means[option], option == "none"))
        choice[cls] = best
    return choice
