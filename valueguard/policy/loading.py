"""Reading a policy's YAML safely: limits checked while composing, duplicate keys and aliases refused, and
error messages that name file:line:field and quote at most a short piece of the offending value.

A policy file is written by a person, so every bound below is far above what one needs, and each is checked
before the thing it bounds is built: an alias bomb is refused at its first alias, a deep nesting at the level past
the limit, a long file before it is parsed (docs/reliability.md lists them).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

import yaml
from pydantic import ValidationError

from valueguard.errors import ValueGuardError

# docs/reliability.md, "Policies". Each error that one of these raises says the number.
MAX_POLICY_BYTES = 1_000_000
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 200_000
MAX_RULES = 1_000
MAX_CONDITIONS = 10_000
MAX_CONDITION_DEPTH = 32
# How much of an offending value an error quotes.
QUOTE_CHARS = 80


class PolicyError(ValueGuardError, ValueError):
    """A policy that cannot be used; the message names the file, the line and the field."""


def clip(value: Any, limit: int = QUOTE_CHARS) -> str:
    """repr(value), cut to about `limit` characters: an error never echoes a whole 5 MB literal."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value):,} characters)"
    text = repr(value) if not isinstance(value, (dict, list)) else _short_repr(value, limit)
    return text if len(text) <= limit else text[:limit] + "..."


def _short_repr(value: dict | list, limit: int) -> str:
    # repr of a big container is itself big; a slice of its items is enough to recognise it.
    items = list(value.items())[:8] if isinstance(value, dict) else value[:8]
    text = repr(dict(items) if isinstance(value, dict) else items)
    return text[:limit] + "..." if len(text) > limit else text


def did_you_mean(word: str, options: Iterable[str]) -> str:
    if len(word) > 2 * QUOTE_CHARS:  # difflib is quadratic in the word; nothing that long is a typo
        return ""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _LimitError(yaml.MarkedYAMLError):
    """A YAML document refused for what it is (too deep, an alias, a duplicate key), though well-formed."""


def _mark_error(problem: str, node_or_event: Any) -> _LimitError:
    return _LimitError(None, None, problem, node_or_event.start_mark)


# libyaml's parser when PyYAML has it (the pure-Python one takes 3x as long on a 1,000-rule policy); the
# composer is always PyYAML's Python one, so that the checks below run on every node as it is composed.
_Parser = getattr(getattr(yaml, "cyaml", None), "CParser", None) or yaml.parser.Parser
_Scanning: tuple[type, ...] = () if _Parser is not yaml.parser.Parser else (yaml.reader.Reader, yaml.scanner.Scanner)


# The base classes are chosen at import time (C parser or Python one), which mypy cannot follow.
class PolicyLoader(yaml.composer.Composer, _Parser, *_Scanning, yaml.constructor.SafeConstructor,  # type: ignore[misc,valid-type]
                   yaml.resolver.Resolver):
    """A safe loader that refuses aliases (before anything is expanded) and duplicate keys (naming both lines),
    and stops at MAX_YAML_DEPTH levels and MAX_YAML_NODES nodes while composing (the composer recurses)."""

    def __init__(self, stream: str) -> None:
        if _Scanning:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
        else:
            _Parser.__init__(self, stream)  # type: ignore[call-arg]  # CParser takes the stream
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise _mark_error("aliases (*name) are not allowed in a policy: write the condition out",
                              self.peek_event())
        self._depth += 1
        self._nodes += 1
        if self._depth > MAX_YAML_DEPTH:
            raise _mark_error(f"nested deeper than {MAX_YAML_DEPTH} levels (the limit)", self.peek_event())
        if self._nodes > MAX_YAML_NODES:
            raise _mark_error(f"more than {MAX_YAML_NODES:,} YAML nodes (the limit)", self.peek_event())
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        # Last-wins would make `on_error: block` then `on_error: allow` fail open without a word.
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            try:
                first = seen.get(key)
            except TypeError:
                continue
            line = key_node.start_mark.line + 1
            if first is not None:
                raise _LimitError(None, None, f"duplicate key {clip(key)} (lines {first} and {line})",
                                  key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def parse(text: str, filename: str) -> tuple[Any, yaml.Node | None]:
    """(data, root node) of a policy's YAML, or PolicyError with file:line."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_POLICY_BYTES:
        raise PolicyError(f"{filename}:1: the policy is {size:,} bytes; the limit is {MAX_POLICY_BYTES:,}")
    loader = PolicyLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _LimitError as e:
        raise PolicyError(f"{_where(e, text, filename)}: {clip(_problem(e), 200)[1:-1]}") from None
    except yaml.YAMLError as e:
        raise PolicyError(f"{_where(e, text, filename)}: not valid YAML ({clip(_problem(e), 200)[1:-1]})") from None
    except RecursionError:  # pragma: no cover - the depth limit is far below Python's
        raise PolicyError(f"{filename}:1: nested too deep") from None
    finally:
        if hasattr(loader, "dispose"):
            loader.dispose()
    return data, node


def _problem(e: yaml.YAMLError) -> str:
    if isinstance(e, yaml.reader.ReaderError):
        return f"character {e.character!r} is not allowed in YAML"
    return str(getattr(e, "problem", None) or e)


def _where(e: yaml.YAMLError, text: str, filename: str) -> str:
    mark = getattr(e, "problem_mark", None)
    if mark is not None:
        return f"{filename}:{mark.line + 1}"
    if isinstance(e, yaml.reader.ReaderError):
        return f"{filename}:{text.count(chr(10), 0, e.position) + 1}"
    return filename


def check_limits(node: yaml.Node | None, filename: str,
                 nesting: frozenset[str] = frozenset({"all", "any", "not"})) -> None:
    """Rules, conditions and condition nesting, counted on the composed YAML before pydantic reads it.
    `nesting`: the keys under which a condition nests one condition or a list of them."""
    if not isinstance(node, yaml.MappingNode):
        return
    rules = next((v for k, v in node.value if k.value == "rules"), None)
    if not isinstance(rules, yaml.SequenceNode):
        return
    if len(rules.value) > MAX_RULES:
        raise PolicyError(f"{filename}:{rules.start_mark.line + 1} rules: {len(rules.value):,} rules; "
                          f"the limit is {MAX_RULES:,}")
    conditions = 0
    for i, rule in enumerate(rules.value):
        when = next((v for k, v in rule.value if k.value == "when"), None) if isinstance(rule, yaml.MappingNode) \
            else None
        stack = [(when, 1)] if when is not None else []
        while stack:  # iterative: the nesting is what is being bounded
            cond, depth = stack.pop()
            if depth > MAX_CONDITION_DEPTH:
                raise PolicyError(f"{filename}:{cond.start_mark.line + 1} rules[{i}].when: conditions nested "
                                  f"deeper than {MAX_CONDITION_DEPTH} (the limit)")
            conditions += 1
            if conditions > MAX_CONDITIONS:
                raise PolicyError(f"{filename}:{cond.start_mark.line + 1} rules[{i}].when: more than "
                                  f"{MAX_CONDITIONS:,} conditions in the policy (the limit)")
            if not isinstance(cond, yaml.MappingNode):
                continue
            for k, v in cond.value:
                if k.value in nesting:
                    stack.extend((c, depth + 1) for c in (v.value if isinstance(v, yaml.SequenceNode) else [v]))


# --- error messages with file:line -------------------------------------------------------------------------

_ALIASES = {"all_": "all", "any_": "any", "not_": "not"}


def _line_of(node: yaml.Node | None, path: tuple[Any, ...]) -> int:
    """1-based line of the deepest node along `path` that exists in the YAML."""
    line = node.start_mark.line + 1 if node is not None else 1
    for key in path:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == _ALIASES.get(str(key), str(key))), None)
            if match is None:
                break
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for key in path:
        name = clip(key) if not isinstance(key, (str, int)) or len(str(key)) > QUOTE_CHARS else str(key)
        out += f"[{name}]" if isinstance(key, int) else (f".{_ALIASES.get(name, name)}" if out
                                                         else _ALIASES.get(name, name))
    return out or "policy"


def _untagged(loc: tuple[Any, ...], hidden: frozenset[str]) -> tuple[Any, ...]:
    """`loc` without the tags a discriminated union adds below a rule's `when` (rules, i, when, TAG, field...)."""
    if len(loc) < 3 or loc[0] != "rules" or loc[2] != "when":
        return loc
    return loc[:3] + tuple(k for k in loc[3:] if not (isinstance(k, str) and k in hidden))


def format_errors(error: ValidationError, root: yaml.Node | None, filename: str, known: list[str],
                  hidden: frozenset[str] = frozenset()) -> str:
    """One line `file:line field.path: message` per error; `hidden`: the condition union's tags, which name no
    YAML key and are left out of the path."""
    lines = []
    for err in error.errors():
        loc = _untagged(tuple(err["loc"]), hidden) + tuple((err.get("ctx") or {}).get("at", ()))  # located below
        line = _line_of(root, loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            field, loc = loc[-1], loc[:-1]
            msg = f"unknown field {clip(field)}{did_you_mean(str(field), known)}"
        elif err["type"] == "missing":
            msg = f"missing field {loc[-1]!r}"
            loc = loc[:-1]
        elif err["type"] == "literal_error":
            options = re.findall(r"'([^']*)'", err.get("ctx", {}).get("expected", ""))
            msg = f"{clip(err['input'])} is not one of {', '.join(options)}{did_you_mean(str(err['input']), options)}"
        elif err["input"] is None and not err["type"].startswith("value_error"):
            msg = f"null is not allowed here ({msg})"
        lines.append(f"{filename}:{line} {_dotted(loc)}: {msg}")
    return "\n".join(lines)
