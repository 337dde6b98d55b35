"""`valueguard label` and `valueguard index add`: a user teaches the guard (docs/teach.md)."""

from __future__ import annotations

from pathlib import Path

import click

from valueguard.cli.index import index
from valueguard.cli.shared import EXIT_BAD_LINES, CliError, _emit, cli, index_option, json_option
from valueguard.config import default_index_dir

VERDICTS = {"r": "right", "w": "wrong", "s": "skip", "q": "quit"}


def _verdict(answer: str) -> str:
    key = answer.strip().lower()[:1]
    if key not in VERDICTS:
        raise click.BadParameter("answer r (right), w (wrong), s (skip) or q (quit)")
    return VERDICTS[key]


def _values(answer: str) -> list[str]:
    from valueguard.audit.teach import parse_values

    try:
        return parse_values(answer)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@cli.command()
@click.argument("audit_out", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="labels.jsonl to append the judgements to (created if missing; turns already in it are skipped).")
@click.option("--only", type=click.Choice(["flagged", "all"]), default="flagged", show_default=True,
              help="Judge only the turns the policy blocked or rewrote, or every turn.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Stop after this many judgements.")
@click.pass_context
def label(ctx: click.Context, audit_out: Path, out_path: Path, only: str, limit: int | None) -> None:
    """Judge the turns of an audit's output (`valueguard audit --out`) as right or wrong, into a labels file.

    For each turn: r (right: the guard's claim holds), w (wrong: then name the values it works against, or none),
    s (skip), q (quit). Every answer is written at once, so a flow cut short loses nothing; run it again to go on.
    Then `valueguard index add LABELS` folds the judgements into the index.
    """
    from valueguard.audit.records import BadLine
    from valueguard.reference.labels import append_labels, labelled_ids
    from valueguard.audit.teach import audited_turns, describe, judgement

    done = labelled_ids(out_path)
    counts = {"right": 0, "wrong": 0, "skip": 0, "already": 0}
    bad: list[BadLine] = []
    turns = []
    for t in audited_turns(audit_out, only):  # type: ignore[arg-type]
        if isinstance(t, BadLine):
            bad.append(t)
        elif t.id in done:
            counts["already"] += 1
        elif t.response.strip():
            turns.append(t)
    for n, turn in enumerate(turns, start=1):
        if limit is not None and counts["right"] + counts["wrong"] >= limit:
            break
        click.echo("\n" + describe(turn, f"[{n}/{len(turns)}] "))
        try:
            verdict = click.prompt("right, wrong, skip or quit? [r/w/s/q]", value_proc=_verdict)
            if verdict == "quit":
                break
            if verdict == "skip":
                counts["skip"] += 1
                continue
            against = None
            if verdict == "wrong":
                against = click.prompt("which values does it work against? (comma-separated, or none)",
                                       default="none", value_proc=_values)
        except click.exceptions.Abort:  # end of input or ^C: what was answered is already written
            click.echo("")
            break
        append_labels(out_path, [judgement(turn, against, note=f"{verdict}: audit action {turn.action}")])
        counts[verdict] += 1
    text = (f"\nlabelled {counts['right'] + counts['wrong']} turn(s) ({counts['right']} right, {counts['wrong']} "
            f"wrong), skipped {counts['skip']}, {counts['already']} already in {out_path}")
    if bad:
        shown = "; ".join(f"line {b.line}: {b.reason}" for b in bad[:10])
        text += f"\n{len(bad)} line(s) of {audit_out} could not be read and were skipped: {shown}"
    if counts["right"] + counts["wrong"]:
        text += f"\nnext: valueguard index add {out_path}"
    click.echo(text)
    if bad:
        ctx.exit(EXIT_BAD_LINES)


@index.command("add")
@click.argument("files", metavar="FILE...", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@index_option
@json_option
@click.pass_context
def index_add(ctx: click.Context, files: tuple[Path, ...], index_dir: Path | None, as_json: bool) -> None:
    """Fold labelled rows (a labels.jsonl, or any reference file) into a built index and refit its read-out.

    Only the new rows are embedded; rows already in the index are skipped and counted. Exit 3 when some lines
    could not be read (each reported by number; the rest was added).
    """
    from valueguard.estimation.index_add import add_to_index
    from valueguard.index.manifest import ValueIndexError

    directory = index_dir or default_index_dir()
    try:
        result = add_to_index(directory, list(files))
    except (ValueIndexError, ValueError) as e:
        raise CliError(str(e)) from e
    lines = [f"added {result.added} row(s) to {directory}: {result.rows_before} -> {result.rows} rows, "
             f"{result.duplicates} already in the index skipped"]
    lines += [f"  {r.describe()}" for r in result.reports]
    if result.added:
        lines.append(f"  {result.faiss_update}")
        lines.append(f"  refitted: {result.refitted or 'nothing (the read-out has no fitted part)'}")
    else:
        lines.append("  nothing new: the index is unchanged")
    lines.append(f"  {result.seconds:.1f} s (embedding {result.embed_seconds:.1f} s, refit {result.refit_seconds:.1f} s)")
    _emit(as_json, result.to_dict(), "\n".join(lines))
    if any(r.bad_lines for r in result.reports):
        ctx.exit(EXIT_BAD_LINES)
