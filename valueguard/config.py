"""Where valueguard keeps its data and indexes, and which embedding model it uses by default."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "VALUEGUARD_DATA_DIR"
MODEL_ENV = "VALUEGUARD_MODEL"
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def data_dir() -> Path:
    """$VALUEGUARD_DATA_DIR, else $XDG_DATA_HOME/valueguard, else ~/.local/share/valueguard."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "valueguard"


def default_index_dir() -> Path:
    return data_dir() / "index"


def default_model() -> str:
    return os.environ.get(MODEL_ENV) or DEFAULT_MODEL
