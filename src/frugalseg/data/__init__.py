"""Datasets: read any supported layout into :class:`Case` records, split them by subject, describe them."""

from frugalseg.data.boxcsv import read_box_csv
from frugalseg.data.case import IGNORE, Box, Case, Dataset
from frugalseg.data.describe import describe_dataset, format_description
from frugalseg.data.echoplaque import contours_to_label, read_echoplaque
from frugalseg.data.folder import read_folder
from frugalseg.data.hc18 import fill_ellipse_outline, read_hc18
from frugalseg.data.images import read_image, read_mask, write_image_png, write_mask_png
from frugalseg.data.phantom import make_phantom_dataset
from frugalseg.data.read import FORMATS, detect_format, read_dataset
from frugalseg.data.splits import split_by_subject, train_test
from frugalseg.data.volumes import read_dicom, read_nifti

__all__ = [
    "FORMATS",
    "IGNORE",
    "Box",
    "Case",
    "Dataset",
    "contours_to_label",
    "describe_dataset",
    "detect_format",
    "fill_ellipse_outline",
    "format_description",
    "make_phantom_dataset",
    "read_box_csv",
    "read_dataset",
    "read_dicom",
    "read_echoplaque",
    "read_folder",
    "read_hc18",
    "read_image",
    "read_mask",
    "read_nifti",
    "split_by_subject",
    "train_test",
    "write_image_png",
    "write_mask_png",
]
