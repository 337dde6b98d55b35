"""Where valueguard keeps its data and indexes, which embedding model it uses by default (the
embedding backends are in valueguard/embedders/backends.py)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "VALUEGUARD_DATA_DIR"
MODEL_ENV = "VALUEGUARD_MODEL"
MODELS_DIR_ENV = "VALUEGUARD_MODELS_DIR"
THREADS_ENV = "VALUEGUARD_THREADS"
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def data_dir() -> Path:
    """$VALUEGUARD_DATA_DIR, else $XDG_DATA_HOME/valueguard, else ~/.local/share/valueguard."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "valueguard"


def default_index_dir() -> Path:
    return data_dir() / "index"


def models_dir() -> Path:
    """Where ONNX exports are cached: $VALUEGUARD_MODELS_DIR, else DATA_DIR/models."""
    if os.environ.get(MODELS_DIR_ENV):
        return Path(os.environ[MODELS_DIR_ENV]).expanduser()
    return data_dir() / "models"


def default_model() -> str:
    return os.environ.get(MODEL_ENV) or DEFAULT_MODEL


def default_threads() -> int:
    """Threads for one forward pass: $VALUEGUARD_THREADS, else the physical cores this process may use."""
    if os.environ.get(THREADS_ENV):
        return max(1, int(os.environ[THREADS_ENV]))
    return physical_cores()


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (hyperthread siblings count once)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
        except OSError:
            cores.add(("?", str(cpu)))
    return max(1, len(cores))
