"""Pseudo-labels from weak annotations, each a label map (``IGNORE`` where unknown) plus a confidence.

* :mod:`~frugalseg.pseudolabels.random_walker`: scribbles / clicks / boxes -> random walker (scikit-image).
* :mod:`~frugalseg.pseudolabels.region_growing`: clicks -> intensity-similarity regions around each click.
* :mod:`~frugalseg.pseudolabels.cam`: tags -> class activation maps of a tiny classifier -> two-threshold masks.
* :mod:`~frugalseg.pseudolabels.refine`: threshold -> train -> re-estimate, with callables.
* :mod:`~frugalseg.pseudolabels.quality`: drop or down-weight by confidence, agreement of two generators.
* :mod:`~frugalseg.pseudolabels.io`: pseudo-label folders (PNG + ``confidence.json``).

Everything random takes a seed; the numpy generators are deterministic.
"""

from frugalseg.pseudolabels.cam import (
    TagClassifier,
    cam_pseudo_masks,
    class_activation_maps,
    threshold_cams,
    tile_shuffle,
    train_tag_classifier,
)
from frugalseg.pseudolabels.io import PseudoLabel, read_pseudo_labels, write_pseudo_labels
from frugalseg.pseudolabels.quality import agreement_filter, filter_by_confidence, label_agreement
from frugalseg.pseudolabels.random_walker import (
    box_random_walker_labels,
    box_seeds,
    probability_margin,
    random_walker_labels,
    random_walker_probabilities,
    unit_range,
)
from frugalseg.pseudolabels.refine import labels_from_probabilities, refine_pseudo_labels
from frugalseg.pseudolabels.region_growing import grow_region, region_growing

__all__ = [
    "PseudoLabel",
    "TagClassifier",
    "agreement_filter",
    "box_random_walker_labels",
    "box_seeds",
    "cam_pseudo_masks",
    "class_activation_maps",
    "filter_by_confidence",
    "grow_region",
    "label_agreement",
    "labels_from_probabilities",
    "probability_margin",
    "random_walker_labels",
    "random_walker_probabilities",
    "read_pseudo_labels",
    "refine_pseudo_labels",
    "region_growing",
    "threshold_cams",
    "tile_shuffle",
    "train_tag_classifier",
    "unit_range",
    "write_pseudo_labels",
]
