"""The `valueguard` command: the group and what commands share (shared.py), one module per command group.

Importing this package registers every command on the group (teach: `label` and `index add`); `valueguard = valueguard.cli:main`.
"""

from valueguard.cli import audit, check, data, index, quality, reward, server, teach, train  # noqa: F401  (each adds its commands)
from valueguard.cli.shared import EXIT_BAD_LINES, EXIT_ERROR, EXIT_FLAGGED, cli, main

__all__ = ["EXIT_BAD_LINES", "EXIT_ERROR", "EXIT_FLAGGED", "cli", "main"]
