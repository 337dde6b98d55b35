"""`valueguard reward-eval`: does the value reward prefer the better of two answers to one prompt (out of fold)?"""

from __future__ import annotations

from pathlib import Path

import click

from valueguard.cli.quality import _f, folds_option, model_option, readout_option, reference_option
from valueguard.cli.shared import CliError, _emit, cli, json_option


def _parse_target(items: tuple[str, ...]) -> dict[str, float]:
    target = {}
    for item in items:
        name, sep, number = item.partition("=")
        try:
            target[name] = float(number) if sep else 1.0
        except ValueError:
            raise CliError(f"--target {item!r}: expected VALUE or VALUE=score, e.g. security=1") from None
    return target


@click.command("reward-eval")
@click.option("--target", "target_items", multiple=True,
              help="A value of the target, VALUE=score in [-1, 1] (VALUE alone means +1); repeatable. Default: "
                   "security, benevolence, conformity, universalism: +1.")
@click.option("--margin", default=0.05, show_default=True, type=click.FloatRange(0, 1),
              help="Label distances closer than this are a tie, and the pair is left out.")
@reference_option
@folds_option
@readout_option
@model_option
@json_option
def reward_eval_command(target_items, margin, references, folds, readout, model, as_json) -> None:
    """Pairwise accuracy of ValueReward on same-prompt answer pairs, cross-validated by prompt."""
    from valueguard.config import data_dir, default_model
    from valueguard.embedders.sentence_transformers import SentenceTransformerEmbedder
    from valueguard.guard.reward import check_target
    from valueguard.policy.profiles import DEFAULT_DISTANCE
    from valueguard.quality.heldout import cross_validate
    from valueguard.quality.reward_eval import SAFE_TARGET, pair_accuracy
    from valueguard.reference import ReferenceSet, fulcra_files

    target = _parse_target(target_items) if target_items else SAFE_TARGET
    try:
        target = check_target(target)
    except ValueError as e:
        raise CliError(str(e)) from None
    paths: list[Path] = list(references) or fulcra_files(data_dir())
    if not paths:
        raise CliError(f"no FULCRA files in {data_dir() / 'fulcra'}: run `valueguard data pull`")
    ref = ReferenceSet.from_files(paths)
    h = cross_validate(ref, SentenceTransformerEmbedder(model or default_model()), folds=folds, readout=readout)
    rows = pair_accuracy(h, [r.prompt for r in ref], target, margin=margin)
    lines = [f"{folds}-fold cross-validation grouped by prompt; read-out {readout}; target "
             + ", ".join(f"{k} {v:+g}" for k, v in target.items()),
             "| distance | label pairs | prefers the closer-labelled answer | stance pairs | prefers the "
             "non-violating answer |", "|---|---|---|---|---|"]
    lines += [f"| {r.distance}{' (used)' if r.distance == DEFAULT_DISTANCE else ''} | {r.label_pairs} | "
              f"{_f(r.label_accuracy)} | {r.stance_pairs} | {_f(r.stance_accuracy)} |" for r in rows]
    _emit(as_json, {"target": target, "folds": folds, "readout": readout, "margin": margin,
                    "rows": [vars(r) for r in rows]}, "\n".join(lines))


cli.add_command(reward_eval_command)
