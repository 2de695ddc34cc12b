"""The one exception type a user's bad input raises.

The CLI prints an :class:`InputError` as a single line (never a traceback), so its message must name the
offending file or value and say what was expected.
"""

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad user input: a corrupt file, a wrong size, an unknown folder layout, a missing run directory."""
