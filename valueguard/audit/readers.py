"""Log readers: one per log format, each a `LogReader` (a path in; `Turn`s and `BadLine`s out, in input order).

Every reader streams: JSONL is read one line at a time and SQLite through its cursor, so a log of any size
is audited in flat memory. Nothing is dropped silently: a line (or row, or assistant turn) that cannot be
audited comes out as a `BadLine` with its line number and the reason, and the reader goes on.

Formats (`detect_format` tells them apart; `read_log(path, format=...)` forces one):
- openai:   {"messages": [{"role", "content"}, ...], "model"?, "id"?}   every assistant message is a turn
- sharegpt: {"conversations": [{"from", "value"}, ...], "model"?, "id"?}  every gpt/assistant/... turn
- hh-rlhf:  {"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected": ...}  every assistant turn of both
- fulcra:   FULCRA annotated pairs (dialogue, value_types)
- scored:   FULCRA evaluator-scored responses (prompt, answer, value_reward)
- plain:    {"id"?, "prompt"?, "response", "source"? | "model"?}: the `valueguard audit` input contract
- llm-db:   the `llm` CLI's logs.db (SQLite): the `turns` of llm >= 0.32 and the legacy `responses` table

Ids: the input's own id where it has one, else `file:line` (file = the file's name; plain keeps the audit
contract's line number); formats with several assistant turns a line add the turn number from 1 (`file:line:N`,
`<id>:N`; hh-rlhf `file:line:chosen:N`); llm-db `file:<table>:<id>`.
An assistant turn with no text is a BadLine ("empty assistant turn N") and the line's other turns are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from valueguard.audit.llm_db import read_llm_db
from valueguard.audit.records import BadLine, LogReader, Turn
from valueguard.reference.benign import hh_messages
from valueguard.reference.formats import Format, FormatTable, keys
from valueguard.reference.readers import scored_source
from valueguard.reference.record import MAX_LINE_BYTES, json_lines

Record = Turn | BadLine
SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_SUFFIXES = {".db", ".sqlite", ".sqlite3"}
# Detection looks this far for the first JSON object, so a few broken lines at the top do not hide the
# format, while a file that is not JSONL at all is refused without being read to the end.
DETECT_MAX_LINES = 100
# A conversation as the readers see it: (kind, text, why-empty) with kind 'user' | 'assistant' | 'other'.
Messages = list[tuple[str, str, str]]


def _json_objects(path: Path, max_line_bytes: int) -> Iterator[tuple[int, dict[str, Any]] | BadLine]:
    """(line number, object) per JSON object line, or a BadLine at once for a line that is not one."""
    for line_no, obj in json_lines(path, max_line_bytes=max_line_bytes):
        yield BadLine(str(path), line_no, obj) if isinstance(obj, str) else (line_no, obj)


def _jsonl_reader(records_of: Callable[[Path, int, dict[str, Any]], Iterable[Record]]) -> LogReader:
    """A reader for JSONL: `records_of` checks one line's object (ValueError: the line is one BadLine) and
    returns its records; it must check the whole line before returning, so a bad line yields nothing else."""

    def read(path: Path, *, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Record]:
        for item in _json_objects(path, max_line_bytes):
            if isinstance(item, BadLine):
                yield item
                continue
            line_no, obj = item
            try:
                # Listed here, so that a reader's check failing half way through a line yields none of it.
                records = list(records_of(path, line_no, obj))
            except (ValueError, TypeError) as e:
                yield BadLine(str(path), line_no, str(e))
                continue
            yield from records

    return read


def _line_id(obj: dict[str, Any], default: str) -> str | int:
    """The line's own id (kept as given) or `default`; ValueError for an id of another type."""
    id_ = obj.get("id", default)
    if not isinstance(id_, (str, int)) or isinstance(id_, bool):
        raise ValueError("'id' must be a string or an integer when given")
    return id_


def _optional_str(value: Any) -> str | None:
    # Metadata (model, source) that is not a string is left out rather than costing the response its audit.
    return value if isinstance(value, str) and value.strip() else None


def _assistant_turns(
    path: Path, line_no: int, base_id: str | int, source: str | None,
    messages: Messages,
) -> Iterator[Record]:
    """The assistant turns of one conversation, numbered from 1; a turn with no text is a BadLine.

    The prompt of an assistant turn is the last user message before it (None when there is none); roles
    such as system or tool are neither prompt nor response.
    """
    prompt: str | None = None
    n = 0
    for kind, text, why_empty in messages:
        if kind == "user":
            prompt = text.strip() or None
        elif kind == "assistant":
            n += 1
            if text.strip():
                yield Turn(f"{base_id}:{n}", prompt, text.strip(), source)
            else:
                yield BadLine(str(path), line_no, f"empty assistant turn {n}{why_empty}")
    if n == 0:
        yield BadLine(str(path), line_no, "no assistant turn to audit")


def _conversation_reader(parse: Callable[[dict[str, Any]], tuple[Messages, Any]]) -> LogReader:
    """A reader for one-conversation-a-line JSONL: `parse` turns a line into (messages, model) or ValueError."""

    def records_of(path: Path, line_no: int, obj: dict[str, Any]) -> Iterable[Record]:
        base_id = _line_id(obj, f"{path.name}:{line_no}")
        messages, model = parse(obj)
        return _assistant_turns(path, line_no, base_id, _optional_str(model), messages)

    return _jsonl_reader(records_of)


# Content-part types that carry text (Chat Completions and Responses API spellings); images, audio and
# other parts are not text the estimator could read, and are left out of the turn.
_TEXT_PARTS = {"text", "input_text", "output_text"}


def _openai_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p["text"] for p in content
                 if isinstance(p, dict) and p.get("type") in _TEXT_PARTS and isinstance(p.get("text"), str)]
        return "\n".join(texts)
    raise ValueError(f"{where}.content must be a string, a list of parts or null")


def _parse_openai(obj: dict[str, Any]) -> tuple[Messages, Any]:
    messages = obj.get("messages")
    if not isinstance(messages, list):
        raise ValueError("'messages' must be a list")
    out = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ValueError(f"{where} must be an object with a string 'role'")
        role = m["role"]
        kind = "assistant" if role == "assistant" else "user" if role == "user" else "other"
        # An assistant message that only calls tools has no text to audit; say so rather than just "empty".
        why = " (tool calls only)" if kind == "assistant" and m.get("tool_calls") else ""
        out.append((kind, _openai_text(m.get("content"), where), why))
    return out, obj.get("model")


# ShareGPT exports name the speakers in several ways, depending on which chat UI they were scraped from.
SHAREGPT_ASSISTANT = {"gpt", "assistant", "chatgpt", "bard", "bing", "model"}
SHAREGPT_USER = {"human", "user"}


def _parse_sharegpt(obj: dict[str, Any]) -> tuple[Messages, Any]:
    conversations = obj.get("conversations")
    if not isinstance(conversations, list):
        raise ValueError("'conversations' must be a list")
    out = []
    for i, m in enumerate(conversations):
        if not isinstance(m, dict) or not isinstance(m.get("from"), str) or not isinstance(m.get("value"), str):
            raise ValueError(f"conversations[{i}] must be an object with string 'from' and 'value'")
        role = m["from"].strip().lower()
        kind = "assistant" if role in SHAREGPT_ASSISTANT else "user" if role in SHAREGPT_USER else "other"
        out.append((kind, m["value"], ""))
    return out, obj.get("model")


read_openai: LogReader = _conversation_reader(_parse_openai)
read_sharegpt: LogReader = _conversation_reader(_parse_sharegpt)

HH_TRANSCRIPTS = ("chosen", "rejected")


def _hh_messages(transcript: str) -> Messages:
    return [(role, text, "") for role, text in hh_messages(transcript)]


def _hh_records(path: Path, line_no: int, obj: dict[str, Any]) -> Iterator[Record]:
    """Both transcripts of a line, chosen first: a guard must also catch what the rejected one says."""
    for name in HH_TRANSCRIPTS:
        transcript = obj.get(name)
        if not isinstance(transcript, str):
            yield BadLine(str(path), line_no, f"'{name}' must be a transcript string")
            continue
        for rec in _assistant_turns(path, line_no, f"{path.name}:{line_no}:{name}", f"hh-rlhf/{name}",
                                    _hh_messages(transcript)):
            # Say which transcript a bad turn is in: the line number alone does not tell.
            yield BadLine(rec.path, rec.line, f"'{name}': {rec.reason}") if isinstance(rec, BadLine) else rec


read_hh_rlhf: LogReader = _jsonl_reader(_hh_records)


# The FULCRA readers below read what the reference readers (valueguard.reference.readers.read_annotated and
# read_scored) read, and tests/audit/test_readers.py checks that on every real row. They are not called
# directly because they report bad lines into a ReadReport without handing control back, so a run of bad
# lines would have to be buffered; and the audit does not need the labels, so a line whose labels are
# broken still has a response to audit.
def _fulcra_records(path: Path, line_no: int, obj: dict[str, Any]) -> list[Record]:
    dialogue = obj.get("dialogue")
    if not isinstance(dialogue, str):
        raise ValueError("'dialogue' must be a string")
    prompt, sep, response = dialogue.partition("\nBob:")
    if not sep:
        raise ValueError("dialogue has no '\\nBob:' turn")
    prompt = prompt.removeprefix("Human:").strip()
    if not response.strip():
        return [BadLine(str(path), line_no, "empty response")]
    return [Turn(f"{path.name}:{line_no}", prompt or None, response.strip(), _optional_str(obj.get("response_source")))]


def _scored_records(path: Path, line_no: int, obj: dict[str, Any]) -> list[Record]:
    answer, prompt = obj.get("answer"), obj.get("prompt")
    if not isinstance(answer, str):
        raise ValueError("'answer' must be a string")
    if prompt is not None and not isinstance(prompt, str):
        raise ValueError("'prompt' must be a string when given")
    if not answer.strip():
        return [BadLine(str(path), line_no, "empty response")]
    return [Turn(f"{path.name}:{line_no}", _optional_str(prompt), answer, scored_source(path))]


read_fulcra: LogReader = _jsonl_reader(_fulcra_records)
read_scored: LogReader = _jsonl_reader(_scored_records)


def _plain_records(path: Path, line_no: int, obj: dict[str, Any]) -> list[Record]:
    """A `{"id"?, "prompt"?, "response", "source"?|"model"?}` line. As the audit's output contract says, a line
    without an id keeps its line number (an int) as id."""
    response, prompt, id_ = obj.get("response"), obj.get("prompt"), obj.get("id", line_no)
    if not isinstance(response, str) or not response.strip():
        raise ValueError("'response' must be a non-empty string")
    if prompt is not None and not isinstance(prompt, str):
        raise ValueError("'prompt' must be a string when given")
    if not isinstance(id_, (str, int)) or isinstance(id_, bool):
        raise ValueError("'id' must be a string or an integer when given")
    source = obj.get("source", obj.get("model"))
    return [Turn(id_, prompt, response, source if isinstance(source, str) else None)]


read_plain: LogReader = _jsonl_reader(_plain_records)


# The shared format table (valueguard/reference/formats.py). Order matters: a FULCRA scored line also has
# 'prompt', a plain line may carry 'messages'. llm-db is told by its SQLite name or magic bytes, never by keys.
READERS: FormatTable[LogReader] = FormatTable([
    Format("openai", keys("messages"), read_openai),
    Format("sharegpt", keys("conversations"), read_sharegpt),
    Format("hh-rlhf", keys("chosen", "rejected"), read_hh_rlhf),
    Format("fulcra", keys("dialogue", "value_types"), read_fulcra),
    Format("scored", keys("answer", "value_reward"), read_scored),
    Format("plain", keys("response"), read_plain),
    Format("llm-db", None, read_llm_db),
])


def format_of_object(obj: dict[str, Any]) -> str | None:
    """The format a JSONL line's keys say, or None."""
    return READERS.detect(obj)


def _unknown(path: Path, what: str) -> ValueError:
    return ValueError(
        f"{path}: cannot tell the log format ({what}). Known formats: {', '.join(READERS)} "
        f"(JSONL keys: messages, conversations, chosen+rejected, dialogue+value_types, answer+value_reward, "
        f"response; or an llm logs.db). Use --format to force one."
    )


def detect_format(path: str | Path) -> str:
    """The log format of a file: SQLite by name or magic bytes, else by the keys of its first JSON object."""
    path = Path(path)
    with open(path, "rb") as f:
        magic = f.read(len(SQLITE_MAGIC))
    if path.suffix.lower() in SQLITE_SUFFIXES or magic == SQLITE_MAGIC:
        return "llm-db"
    seen = 0
    # json_lines, as the readers read: a BOM is accepted, and a line too long, too deep or not UTF-8 is skipped.
    for _, obj in json_lines(path):
        seen += 1
        if seen > DETECT_MAX_LINES:
            raise _unknown(path, f"no JSON object line in its first {DETECT_MAX_LINES} lines")
        if isinstance(obj, str):
            continue  # a broken line; the reader reports it, detection looks at the next one
        fmt = format_of_object(obj)
        if fmt is None:
            raise _unknown(path, f"first JSON object has keys {clip_keys(obj)}")
        return fmt
    raise _unknown(path, "no JSON object line" if seen else "empty file")


def clip_keys(obj: dict[str, Any]) -> str:
    keys = sorted(str(k)[:40] for k in list(obj)[:20])
    return str(keys) + (f" and {len(obj) - 20} more" if len(obj) > 20 else "")


def read_log(path: str | Path, format: str = "auto", *, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Record]:
    """The turns and bad lines of one log, streamed. The format is detected (and checked) at the call.
    `max_line_bytes`: a longer line (or database value) is a bad line, skipped unparsed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"log file not found: {path}")
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in READERS:
        raise ValueError(f"unknown log format {format!r}; known: auto, {', '.join(READERS)}")
    return READERS[fmt](path, max_line_bytes=max_line_bytes)
