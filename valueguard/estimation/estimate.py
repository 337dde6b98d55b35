"""Estimate and Neighbor: what an estimate says of one response, and the evidence behind it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from valueguard.values import ValueVector


class Neighbor(BaseModel):
    """One piece of evidence: a labelled reference row close to the response."""

    model_config = ConfigDict(frozen=True)
    id: str = Field(description="Reference row id, e.g. 'trustworthy_data.dev:17'.")
    source: str = Field(description="Who wrote the reference response.")
    label_kind: str = Field(description="'annotated' or 'model'.")
    similarity: float = Field(description="Cosine similarity to the response, in [-1, 1].")
    weight: float = Field(description="Share of this neighbour in the estimate; the weights sum to 1.")
    values: dict[str, float] = Field(description="The neighbour's labelled value scores.")
    response: str = Field(description="A snippet of the neighbour's response.")


class Estimate(BaseModel):
    """A response's estimated value vector and the evidence behind it."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    values: ValueVector = Field(
        description="The estimated scores, each in [-1, 1]: the expected label, P(upholds) - P(works against).")
    against: dict[str, float] = Field(
        description="For each value, the estimated probability that the response works against it (calibrated "
        "on held-out reference data when the index has a value model; the neighbours' weighted share otherwise).")
    neighbors: list[Neighbor] = Field(description="The k nearest reference rows, most similar first.")
    confidence: float = Field(
        description="In [0, 1]: the neighbours' weighted similarity times their agreement (1 - mean weighted "
        "spread of their labels). Low when the response is unlike the reference data or its neighbours disagree."
    )
    windows: int = Field(default=1, description="How many readings the text was read as: the windows of a long "
                         "text, and the text without a short first or last sentence (estimation/windows.py).")
    window: list[int] | None = Field(
        default=None, description="[start, end) characters of the reading that decided, when there were several.")

    @property
    def violation(self) -> float:
        """The highest probability of working against any value: what violation metrics rank by."""
        return max(self.against.values())

    def to_dict(self, *, neighbors: int | None = None) -> dict[str, Any]:
        """Rounded values, P(against), confidence and the first `neighbors` neighbours, for JSON output."""
        out = {
            "values": {k: round(v, 4) for k, v in self.values.items()},
            "against": {k: round(v, 4) for k, v in self.against.items()},
            "confidence": round(self.confidence, 4),
            "neighbors": [n.model_dump() for n in self.neighbors[:neighbors]],
        }
        if self.window is not None:
            out["window"] = self.window
        return out
