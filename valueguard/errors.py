"""ValueGuardError: the one base of every error valueguard raises on purpose.

Each error keeps the stdlib base it always had as well (a missing index is still a FileNotFoundError, a bad
policy still a ValueError), so `except ValueGuardError` catches all of ours and older handlers keep working.
The errors themselves live beside the code that raises them; this module imports nothing of valueguard.
"""

from __future__ import annotations


class ValueGuardError(Exception):
    """Base of every error valueguard raises on purpose (bad input, unusable index, blocked response, ...)."""
