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
    "ValueEstimator": "valueguard.estimation.estimator",
    "Estimate": "valueguard.estimation.estimate",
    "Neighbor": "valueguard.estimation.estimate",
    "ValueIndex": "valueguard.estimation.value_index",
    "ReadOut": "valueguard.estimation.readout",
    "ValueGuard": "valueguard.guard.guard",
    "Verdict": "valueguard.guard.guard",
    "ResponseBlocked": "valueguard.guard.rewrite",
    "Rewriter": "valueguard.guard.rewrite",
    "ValueReward": "valueguard.guard.reward",
    "Policy": "valueguard.policy.model",
    "Decision": "valueguard.policy.model",
    "PolicyError": "valueguard.policy.loading",
    "ValueGuardError": "valueguard.errors",
    "ReferenceRecord": "valueguard.reference",
    "ReferenceSet": "valueguard.reference",
    "Embedder": "valueguard.embedders.base",
    "SentenceTransformerEmbedder": "valueguard.embedders.sentence_transformers",
    "OnnxEmbedder": "valueguard.embedders.onnx_runtime",
    "make_embedder": "valueguard.embedders.backends",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover
    from valueguard.embedders.backends import make_embedder
    from valueguard.embedders.base import Embedder
    from valueguard.embedders.onnx_runtime import OnnxEmbedder
    from valueguard.embedders.sentence_transformers import SentenceTransformerEmbedder
    from valueguard.errors import ValueGuardError
    from valueguard.estimation.estimate import Estimate, Neighbor
    from valueguard.estimation.estimator import ValueEstimator
    from valueguard.estimation.readout import ReadOut
    from valueguard.estimation.value_index import ValueIndex
    from valueguard.guard.guard import ValueGuard, Verdict
    from valueguard.guard.reward import ValueReward
    from valueguard.guard.rewrite import ResponseBlocked, Rewriter
    from valueguard.policy.loading import PolicyError
    from valueguard.policy.model import Decision, Policy
    from valueguard.reference import ReferenceRecord, ReferenceSet
    from valueguard.values import BASIC_VALUES, VALUE_NAMES, ValueVector


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'valueguard' has no attribute {name!r}")
