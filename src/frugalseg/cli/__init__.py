"""The ``frugalseg`` command line: thin adapters over the library, one library call per subcommand.

Commands live in one module per area (:mod:`.core`, :mod:`.weak`, :mod:`.foundation`, :mod:`.active`);
importing them registers them on :data:`app`.
"""

from frugalseg.cli import active, core, foundation, weak
from frugalseg.cli._app import app, main

__all__ = ["active", "app", "core", "foundation", "main", "weak"]
