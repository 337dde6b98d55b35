"""valueguard's loggers: structlog's API (an event and fields), written to the standard `logging` module.

A library prints nothing unless the application asks: every event goes to a stdlib logger under `valueguard`
(`valueguard.guard`, `valueguard.langchain`, ...), which has a NullHandler, so an application that configures no
logging sees nothing, and one that calls `logging.basicConfig(level=logging.INFO)` sees each event as
`response checked action=allow rules=[] ...`, with the event and its fields also on the record as
`record.valueguard`. When the application has configured structlog itself (or a test captures with
`structlog.testing.capture_logs`), its processors render the event instead, still into the stdlib logger.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

ROOT = "valueguard"
logging.getLogger(ROOT).addHandler(logging.NullHandler())


def _field(value: Any) -> str:
    text = str(value)
    return repr(value) if isinstance(value, str) and (" " in text or not text) else text


class Logger:
    """Has what valueguard's modules call: debug, info, warning, error, each with a short event and fields."""

    def __init__(self, name: str) -> None:
        self.stdlib = logging.getLogger(name)

    def _log(self, level: int, event: str, fields: dict[str, Any]) -> None:
        if structlog.is_configured():
            # The application chose how structlog renders; the rendered event still goes to our stdlib logger.
            bound = structlog.wrap_logger(self.stdlib, wrapper_class=structlog.stdlib.BoundLogger)
            getattr(bound, logging.getLevelName(level).lower())(event, **fields)
        elif self.stdlib.isEnabledFor(level):
            message = " ".join([event, *(f"{k}={_field(v)}" for k, v in fields.items())])
            self.stdlib.log(level, "%s", message, extra={"valueguard": {"event": event, **fields}})

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, fields)


def get_logger(name: str) -> Logger:
    if name != ROOT and not name.startswith(ROOT + "."):
        raise ValueError(f"valueguard's loggers live under {ROOT!r}, got {name!r}")
    return Logger(name)
