"""The four actions, stated once: what a rule may ask for, which wins, and which ones replace the response.

The guard, the streaming gate, the integrations, the server, the audit (summary and report) and the quality
reports read them from here; none restates them.
"""

from __future__ import annotations

from typing import Literal, get_args

Action = Literal["allow", "log", "rewrite", "block"]
# Mildest first: when several rules fire, the most severe action wins.
ACTIONS: tuple[Action, ...] = get_args(Action)
PRECEDENCE: dict[str, int] = {a: i for i, a in enumerate(ACTIONS)}
# The actions that replace the response (a revision or the block message): what counts as flagged.
FLAGGING: tuple[Action, ...] = ("rewrite", "block")
