"""frugalseg: accurate medical image segmentation for the least expert annotation effort."""

import logging

from frugalseg.errors import InputError

__all__ = ["InputError", "__version__"]
__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
