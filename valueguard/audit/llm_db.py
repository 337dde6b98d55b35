"""The `llm` CLI's logs.db (SQLite), read through its cursor, read-only.

Every value is read as bytes and decoded here: one TEXT value that is not UTF-8 is a bad row, not an
`sqlite3.OperationalError` that ends the run. A value longer than `max_line_bytes` is a bad row too, and is never
fetched (SQL replaces it by NULL and hands its length). A database damaged part way through ends its table with one
bad row saying where; the next table is still read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from valueguard.audit.records import BadLine, Turn
from valueguard.reference.record import MAX_LINE_BYTES

Record = Turn | BadLine


def _optional_str(value: str | None) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0].decode("utf-8", "replace") for row in
            conn.execute("select name from sqlite_master where type = 'table'")}


# llm >= 0.32 logs each model call as a row of `turns`, with its text in `turn_search` (the user's prompt and
# the assistant's text output, derived by llm itself from messages/parts). A turn with no text (a pure tool
# call) has no turn_search row, and is reported rather than skipped.
# A value over the cap comes back as NULL with its length beside it, so it is never held in memory.
_CAPPED = "case when length(cast({col} as blob)) > :cap then null else {col} end, length(cast({col} as blob))"
_TURNS_SQL = f"""
select turns.rowid, turns.id, turns.model, {_CAPPED.format(col="turn_search.prompt")},
       {_CAPPED.format(col="turn_search.response")}
  from turns left join turn_search on turn_search.turn_id = turns.id
 order by turns.rowid
"""
# Older llm versions wrote `responses`. An upgraded database can hold a call in both tables (dual-write or
# backfill, same id); as `llm logs` does, the turn is the record kept and the legacy copy is left out.
_LEGACY_SQL = (f"select rowid, id, model, {_CAPPED.format(col='prompt')}, {_CAPPED.format(col='response')} "
               "from responses {where} order by rowid")


def read_llm_db(path: Path, *, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Record]:
    """Legacy `responses` rows first (they are the older history), then `turns`; id `file:<table>:<id>`.

    The tables are checked here, at the call, so a file that is no llm database fails before the audit starts.
    """
    # Read-only: an audit must never create or migrate a user's log database.
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    conn.text_factory = bytes
    try:
        tables = _tables(conn)
    except sqlite3.DatabaseError as e:
        conn.close()
        raise ValueError(f"{path}: not a readable SQLite database ({e})") from None
    has_turns = "turns" in tables
    problem = None
    if not has_turns and "responses" not in tables:
        problem = "it has neither a 'turns' nor a 'responses' table"
    elif has_turns and "turn_search" not in tables:
        problem = "it has 'turns' but no 'turn_search' (written by llm >= 0.32)"
    if problem:
        conn.close()
        raise ValueError(f"{path}: not an llm logs database valueguard can read: {problem}")
    queries = []
    if "responses" in tables:
        where = "where id not in (select id from turns)" if has_turns else ""
        queries.append(("responses", _LEGACY_SQL.format(where=where)))
    if has_turns:
        queries.append(("turns", _TURNS_SQL))
    return _llm_rows(path, conn, queries, max_line_bytes)


def _llm_rows(path: Path, conn: sqlite3.Connection, queries: list[tuple[str, str]],
              max_bytes: int) -> Iterator[Record]:
    try:
        for table, sql in queries:
            last = 0
            try:
                for rowid, id_, model, prompt, p_len, response, r_len in conn.execute(sql, {"cap": max_bytes}):
                    last = rowid
                    yield _row(path, table, rowid, id_, model, (prompt, p_len), (response, r_len), max_bytes)
            except sqlite3.DatabaseError as e:  # damaged past this row: say where, go on with the next table
                yield BadLine(str(path), last + 1, f"{table} after row {last}: cannot be read ({e})")
    finally:
        conn.close()


def _row(path: Path, table: str, rowid: int, id_: object, model: object, prompt: tuple[object, int | None],
         response: tuple[object, int | None], max_bytes: int) -> Record:
    name = id_.decode("utf-8", "replace") if isinstance(id_, bytes) else str(id_)
    texts = []
    for column, (value, length) in (("prompt", prompt), ("response", response)):
        if value is None and length is not None and length > max_bytes:
            return BadLine(str(path), rowid, f"{table} row {name}: {column} longer than {max_bytes:,} bytes, skipped")
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as e:
                return BadLine(str(path), rowid, f"{table} row {name}: {column} is not UTF-8 (byte "
                                                 f"0x{value[e.start]:02x} at {e.start + 1})")
        texts.append(value)
    prompt_text, response_text = texts
    if not isinstance(response_text, str) or not response_text.strip():
        return BadLine(str(path), rowid, f"{table} row {name}: empty response")
    prompt_text = prompt_text.strip() if isinstance(prompt_text, str) and prompt_text.strip() else None
    model_name = model.decode("utf-8", "replace") if isinstance(model, bytes) else model
    return Turn(f"{path.name}:{table}:{name}", prompt_text, response_text.strip(),
                _optional_str(model_name if isinstance(model_name, str) else None))
