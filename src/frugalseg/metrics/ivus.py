"""The IVUS challenge measures (Balocco et al. 2014, MICCAI 2011 IVUS challenge): JCC, PAD and HD.

Two regions are scored from a label map (0 background, 1 lumen, 2 vessel wall between lumen and EEM):

* ``"lumen"``: pixels labelled 1 (inside the lumen border);
* ``"vessel"``: pixels labelled 1 or 2 (inside the external elastic membrane, the media-adventitia border).

For each region:

* ``jcc``: Jaccard coefficient ``|P ∩ T| / |P ∪ T|`` (``IGNORE`` target pixels excluded);
* ``pad``: percentage of area difference ``|A_pred - A_target| / A_target`` **as a fraction** (``0.05``
  means 5 %; multiply by 100 for the percentage the challenge tables print);
* ``hd_mm``: Hausdorff distance in mm between the region contours (the maximum, not the 95th percentile);
  the contours are the regions' boundary pixels (see :mod:`frugalseg.metrics.distance`), not the
  challenge's polygon contours, so values agree with the challenge's to within about one pixel;
* ``area_pred_mm2`` / ``area_target_mm2``: the two areas in mm².

Empty rules: JCC as :func:`~frugalseg.metrics.overlap.jaccard_score` (both empty ``1.0``, one empty
``0.0``); PAD ``0.0`` when both are empty and ``NaN`` when only the target is empty; HD as
:func:`~frugalseg.metrics.distance.hausdorff_mm` (both empty ``0.0``, one empty ``NaN``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from frugalseg.data.case import IGNORE
from frugalseg.metrics._checks import as_label_map, check_pair, check_spacing
from frugalseg.metrics.distance import hausdorff_mm
from frugalseg.metrics.overlap import jaccard_score

__all__ = ["ivus_measures", "percentage_area_difference"]


def percentage_area_difference(pred: np.ndarray, target: np.ndarray) -> float:
    """PAD ``|A_pred - A_target| / A_target`` of two masks, as a fraction (not multiplied by 100).

    The ratio does not depend on the pixel size. Empty rule: both empty ``0.0``; target empty and
    prediction not ``NaN``.

    Args:
        pred: predicted mask; non-zero is foreground.
        target: reference mask; non-zero is foreground.

    Shape:
        ``pred``, ``target``: ``(H, W)``.
    """
    p = np.asarray(pred)
    t = np.asarray(target)
    check_pair(p, t)
    a_pred = int(np.count_nonzero(p))
    a_target = int(np.count_nonzero(t))
    if a_target == 0:
        return 0.0 if a_pred == 0 else float("nan")
    return abs(a_pred - a_target) / a_target


def ivus_measures(
    pred_label: np.ndarray,
    target_label: np.ndarray,
    *,
    spacing: Sequence[float],
    lumen_labels: Sequence[int] = (1,),
    vessel_labels: Sequence[int] = (1, 2),
) -> dict[str, dict[str, float]]:
    """JCC, PAD and HD of the lumen and vessel regions of an IVUS frame (module docstring has the rules).

    Args:
        pred_label: predicted label map.
        target_label: reference label map; ``IGNORE`` (255) pixels are excluded from JCC and count as
            outside both regions for PAD and HD.
        spacing: ``(row_mm, col_mm)`` pixel size in millimetres.
        lumen_labels: label values that make up the lumen region.
        vessel_labels: label values that make up the vessel region (everything inside the EEM).

    Returns:
        ``{"lumen": {...}, "vessel": {...}}``, each with keys ``jcc``, ``pad``, ``hd_mm``,
        ``area_pred_mm2``, ``area_target_mm2``.

    Shape:
        ``pred_label``, ``target_label``: ``(H, W)`` integer.
    """
    pred = as_label_map(pred_label, "pred_label")
    target = as_label_map(target_label, "target_label")
    check_pair(pred, target)
    row_mm, col_mm = check_spacing(spacing)
    valid = target != IGNORE
    pixel_mm2 = row_mm * col_mm
    results: dict[str, dict[str, float]] = {}
    for region, labels in (("lumen", lumen_labels), ("vessel", vessel_labels)):
        p = np.isin(pred, list(labels))
        t = np.isin(target, list(labels))
        results[region] = {
            "jcc": jaccard_score(p, t, valid_mask=valid),
            "pad": percentage_area_difference(p, t),
            "hd_mm": hausdorff_mm(p, t, spacing=(row_mm, col_mm)),
            "area_pred_mm2": float(np.count_nonzero(p)) * pixel_mm2,
            "area_target_mm2": float(np.count_nonzero(t)) * pixel_mm2,
        }
    return results
