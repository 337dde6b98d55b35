"""What `valueguard label` does with an audit's output: the turns to judge, how one is shown, and the judgement
a user's answer makes (a LabelRecord for labels.jsonl). The terminal prompts themselves are the CLI's.

The guard's claim about a turn is what its action says: a flagged turn (block or rewrite) works against the values
it was most confident of (P(against) >= 0.5, or else the one it rated highest); any other turn works against none.
"right" labels the turn with that claim; "wrong" asks the user which values it works against (possibly none).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from valueguard.audit.records import BadLine
from valueguard.audit.summary import FLAGGED
from valueguard.reference.labels import LabelRecord
from valueguard.reference.record import json_lines
from valueguard.values import VALUE_NAMES, basic_value_of

Only = Literal["flagged", "all"]
CLAIM_P = 0.5
SNIPPET = 400
NONE_WORDS = ("", "none", "no", "-", "nothing")


@dataclass(frozen=True)
class AuditedTurn:
    """One line of an audit's output, as much as judging it needs."""

    id: str
    prompt: str | None
    response: str
    action: str
    against: dict[str, float]  # P(works against) per value
    values: dict[str, float]

    @property
    def flagged(self) -> bool:
        return self.action in FLAGGED

    def claimed_against(self) -> list[str]:
        """The values the guard's action says the response works against (none unless it was flagged)."""
        if not self.flagged:
            return []
        confident = [v for v, p in sorted(self.against.items(), key=lambda kv: -kv[1]) if p >= CLAIM_P]
        return confident or [max(self.against, key=self.against.__getitem__)]


def _turn(obj: dict) -> AuditedTurn | str:
    """An audit output line, or why it is not one."""
    response, against, values = obj.get("response"), obj.get("against"), obj.get("values")
    if not isinstance(response, str) or not isinstance(against, dict) or not isinstance(values, dict):
        return "not an audit output line (needs response, values and against; see `valueguard audit --out`)"
    if obj.get("id") is None:
        return "no id"
    try:
        against = {str(k): float(v) for k, v in against.items() if k in VALUE_NAMES}
        values = {str(k): float(v) for k, v in values.items() if k in VALUE_NAMES}
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer too big for a float
        return "against / values are not numbers"
    if not against:
        return "against names no value"
    prompt = obj.get("prompt")
    return AuditedTurn(str(obj["id"]), prompt if isinstance(prompt, str) else None, response,
                       str(obj.get("action", "allow")), against, values)


def audited_turns(path: str | Path, only: Only = "flagged") -> Iterator[AuditedTurn | BadLine]:
    """The turns of an audit's output to judge (`only`: the flagged ones, or all), in file order; a line that is
    not an audit record is a BadLine with its number, and the rest still comes."""
    for line_no, obj in json_lines(path):
        turn = _turn(obj) if isinstance(obj, dict) else obj
        if isinstance(turn, str):
            yield BadLine(str(path), line_no, turn)
        elif only == "all" or turn.flagged:
            yield turn


def describe(turn: AuditedTurn, position: str = "") -> str:
    """The turn as the flow shows it: id, action, prompt and response snippets, and what the guard claims."""

    def snip(text: str) -> str:
        text = " ".join(text.split())
        return text if len(text) <= SNIPPET else text[:SNIPPET] + " …"

    top = sorted(turn.against.items(), key=lambda kv: -kv[1])[:3]
    claim = turn.claimed_against()
    lines = [f"{position}{turn.id}  action: {turn.action}"]
    if turn.prompt:
        lines.append(f"  prompt:   {snip(turn.prompt)}")
    lines.append(f"  response: {snip(turn.response)}")
    lines.append("  guard:    " + (f"works against {', '.join(claim)}" if claim else "works against no value"))
    lines.append("  P(against): " + ", ".join(f"{v} {p:.2f}" for v, p in top))
    upheld = [f"{v} {s:+.2f}" for v, s in sorted(turn.values.items(), key=lambda kv: -kv[1])[:3] if s >= 0.3]
    if upheld:
        lines.append(f"  upholds:  {', '.join(upheld)}")
    return "\n".join(lines)


def parse_values(answer: str) -> list[str]:
    """'security, benevolence' -> ['security', 'benevolence']; 'none' (or nothing) -> []; an unknown name is a
    ValueError naming the known ones."""
    if answer.strip().lower() in NONE_WORDS:
        return []
    out = []
    for name in answer.replace(";", ",").split(","):
        if not name.strip():
            continue
        basic = basic_value_of(name.strip())
        if basic is None:
            raise ValueError(f"{name.strip()!r} is not a value; known: {', '.join(VALUE_NAMES)} (or none)")
        out.append(basic)
    return list(dict.fromkeys(out))


def judgement(turn: AuditedTurn, against: list[str] | None = None, note: str | None = None) -> LabelRecord:
    """The label a verdict makes: `against` None means "right" (the guard's claim), a list means "wrong, it works
    against these" (empty: none)."""
    values = turn.claimed_against() if against is None else against
    return LabelRecord(prompt=turn.prompt or "", response=turn.response, id=turn.id, note=note,
                       **({"against": values} if values else {"violation": False}))
