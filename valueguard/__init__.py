"""valueguard: a runtime guardrail for LLM apps, grounded in Schwartz's basic human values (Value FULCRA).

The public names are imported lazily, so `import valueguard` stays fast until you use one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ValueVector": "valueguard.values",
    "VALUE_NAMES": "valueguard.values",
    "BASIC_VALUES": "valueguard.values",
    "ValueEstimator": "valueguard.estimator",
    "Estimate": "valueguard.estimator",
    "Neighbor": "valueguard.estimator",
    "ValueIndex": "valueguard.index",
    "ValueGuard": "valueguard.guard",
    "Verdict": "valueguard.guard",
    "Policy": "valueguard.policy",
    "PolicyError": "valueguard.policy",
    "ResponseBlocked": "valueguard.actions",
    "ReferenceRecord": "valueguard.reference",
    "ReferenceSet": "valueguard.reference",
    "SentenceTransformerEmbedder": "valueguard.embedding",
    "Embedder": "valueguard.embedding",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover
    from valueguard.embedding import Embedder, SentenceTransformerEmbedder
    from valueguard.estimator import Estimate, Neighbor, ValueEstimator
    from valueguard.actions import ResponseBlocked
    from valueguard.guard import ValueGuard, Verdict
    from valueguard.index import ValueIndex
    from valueguard.policy import Policy, PolicyError
    from valueguard.reference import ReferenceRecord, ReferenceSet
    from valueguard.values import BASIC_VALUES, VALUE_NAMES, ValueVector


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'valueguard' has no attribute {name!r}")
