"""Which inputs the pair read-out's stacker should read: candidate features over saved out-of-fold features.

Every FULCRA row is embedded once (the response alone, its prompt) and pair-encoded once (int8, as the read-out
does); each row's value-model opinion comes from a model fitted without its prompt group (`pair.out_of_fold`,
the same 5 grouped folds as `valueguard eval`). Then, for each variant and each of those folds, a stacker is
fitted on the other folds (with the data directory's benign anchors, as `index build` fits it) and reads the
fold's rows. Nested as `valueguard eval` nests it: the value-model opinion a training row (or an anchor) gives
the stacker comes from models fitted on the training folds only (5 inner grouped folds, as `PairReadOut.fit`
makes them), so no opinion the stacker learns from has seen the test fold. (Before, the training rows' opinions
were the outer out-of-fold ones, from models that had seen the test fold: that shortcut read the shipped inputs
0.04 FULCRA AP below `eval` and favoured stackers that ignore the value model.)

Variants (the extra inputs beside the pair vector and the value model's logits):
- base: none (the read-out before the context shift);
- shift: the pair pass's response tokens minus the response embedded alone (the context shift, shipped);
- residual-response / residual-pair: the response's vector minus the softmax-weighted mean of its ten nearest
  reference rows' vectors (the response embedding / the pair pass's response half), the topic taken out;
- stance-probe: a logistic direction fitted on same-prompt (violating - not violating) differences of the
  scored rows, its score as one feature (out of fold);
- shift-no-vm / shift-vm-clip: the shift's inputs, the value model's logits left out (all zero) / its
  probabilities clipped to [0.047, 0.953] (logits within +-3) instead of [1e-4, 1 - 1e-4].

Columns: violation AP / AUC per label kind, stance pairs, the share of the 600 benign HH-RLHF turns above the
threshold that gives recall 0.6 / 0.7 on all violations, and the demo's cases (examples/demo.py) as P(against).

    .venv/bin/python benchmarks/stacker_features.py --variants base,shift --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))

from demo import CASES  # noqa: E402

from valueguard.config import data_dir  # noqa: E402
from valueguard.estimation.folds import exact_top_k  # noqa: E402
from valueguard.estimation.readout.base import (  # noqa: E402
    BenignAnchors,
    ReadOutFit,
    ReadOutInput,
    ReferenceArrays,
)
from valueguard.estimation.readout.stacker import AnchorFeatures, Stacker  # noqa: E402
from valueguard.estimation.readout.value_model import fit_logistic  # noqa: E402
from valueguard.quality.compare import stance_pair_rows  # noqa: E402
from valueguard.quality.metrics import average_precision, roc_auc  # noqa: E402
from valueguard.values.polarity import violated_rows  # noqa: E402

DEMO = [(p, r, kind) for p, r, kind in CASES if p]


def prepare(path: Path) -> dict[str, np.ndarray]:
    """Embed, pair-encode and read out (out of fold) every row, the benign turns and the demo; embed and pair-encode
    the anchors (their value-model opinions are per fold: `nested`)."""
    from valueguard.embedders.sentence_transformers import SentenceTransformerEmbedder
    from valueguard.estimation.defaults import DEFAULT_K, DEFAULT_TAU
    from valueguard.estimation.folds import group_folds
    from valueguard.estimation.readout.pair import PairEncoder, out_of_fold
    from valueguard.estimation.readout.value_model import NEIGHBOURS, ValueModelReadOut
    from valueguard.quality.heldout import embed_cached
    from valueguard.reference.benign import BENIGN_FILE, benign_test_turns

    embedder = SentenceTransformerEmbedder()
    fit = reference_fit(embedder)
    arrays, prompts, responses = fit.reference, list(fit.prompts), list(fit.responses)
    vm_a, vm_u = out_of_fold(fit)
    encoder = PairEncoder(embedder.model_id)
    vm = ValueModelReadOut.fit(fit)

    def read(turns: list[tuple[str, str]]) -> list[np.ndarray]:
        """(response embedding, value-model P(against), P(upholds), pair vector) of unlabelled (prompt, response)."""
        ps, rs = [p for p, _ in turns], [r for _, r in turns]
        r_emb, p_emb = embed_cached(embedder, rs), embed_cached(embedder, ps)
        sims, idx = exact_top_k(r_emb, fit.response_emb, NEIGHBOURS)
        out = vm.predict(ReadOutInput(rs, ps, r_emb, list(p_emb), sims, idx, arrays, DEFAULT_K, DEFAULT_TAU))
        return [r_emb, out.against, out.upholds, encoder.encode(ps, rs)]

    saved: dict[str, np.ndarray] = {
        "resp": fit.response_emb, "vm_a": vm_a, "vm_u": vm_u, "pair": encoder.encode(prompts, responses),
        "fold": group_folds(prompts, 5, 0), "against": arrays.against, "upholds": arrays.upholds,
        "values": arrays.values, "kinds": arrays.label_kinds, "prompts": np.array(prompts)}
    anchors = fit.anchors
    assert anchors is not None  # reference_fit always attaches the data directory's (maybe none)
    saved.update(a_r=anchors.response_emb, a_pair=encoder.encode(list(anchors.prompts), list(anchors.responses)))
    benign = [(p, r) for r, p in benign_test_turns(data_dir() / BENIGN_FILE) if p]
    for key, turns in (("b", benign), ("d", [(p, r) for p, r, _ in DEMO])):
        saved.update(zip((f"{key}_r", f"{key}_a", f"{key}_u", f"{key}_pair"), read(turns)))
    saved.update(nested(fit, saved["fold"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **saved)
    return saved


def reference_fit(embedder=None) -> ReadOutFit:
    """The FULCRA rows of the data directory as `index build` fits a read-out on them, with the data directory's
    benign anchors (embedded by `embedder`, default the default model; from the data directory's cache)."""
    from valueguard.embedders.sentence_transformers import SentenceTransformerEmbedder
    from valueguard.quality.heldout import _embed, embed_cached
    from valueguard.reference import ReferenceSet, fulcra_files
    from valueguard.reference.benign import default_anchor_turns
    from valueguard.values.polarity import polarity

    ref = ReferenceSet.from_files(fulcra_files(data_dir()))
    embedder = embedder or SentenceTransformerEmbedder()
    emb = _embed(ref, embedder, None)
    values = ref.value_matrix()
    kinds = np.array([r.label_kind for r in ref.records])
    against, upholds = polarity(values, kinds)
    turns = default_anchor_turns(data_dir())
    a_p, a_r = [p for p, _ in turns], [r for _, r in turns]
    anchors = BenignAnchors(a_p, a_r, embed_cached(embedder, a_r), embed_cached(embedder, a_p))
    return ReadOutFit([r.response for r in ref.records], [r.prompt for r in ref.records], emb.response, emb.prompt,
                      ReferenceArrays(values, against, upholds, kinds), model_id=embedder.model_id, anchors=anchors)


def nested(fit: ReadOutFit, fold: np.ndarray) -> dict[str, np.ndarray]:
    """For each outer fold g: the training rows' value-model opinions out of inner folds of the training rows
    (`pair.out_of_fold` on them, as `PairReadOut.fit` gets them), and the benign anchors' (`fit.anchors`) opinion
    from the value model fitted on the training rows (as `pair.anchor_features`). (folds, rows, 10) arrays, the
    rows of fold g left 0 in [g]."""
    from valueguard.estimation.defaults import DEFAULT_K, DEFAULT_TAU
    from valueguard.estimation.readout.pair import _subset, out_of_fold
    from valueguard.estimation.readout.value_model import NEIGHBOURS, ValueModelReadOut

    anchors = fit.anchors
    a = len(anchors) if anchors is not None else 0
    folds = int(fold.max()) + 1
    out = {k: np.zeros((folds, n, 10)) for k, n in (("nest_a", len(fold)), ("nest_u", len(fold)),
                                                   ("a_nest_a", a), ("a_nest_u", a))}
    for g in range(folds):
        tr = np.where(fold != g)[0]
        part = _subset(fit, tr)
        out["nest_a"][g, tr], out["nest_u"][g, tr] = out_of_fold(part)
        if anchors is not None and a:
            sims, idx = exact_top_k(anchors.response_emb, part.response_emb, NEIGHBOURS)
            p = ValueModelReadOut.fit(part).predict(ReadOutInput(
                list(anchors.responses), list(anchors.prompts), anchors.response_emb, list(anchors.prompt_emb),
                sims, idx, part.reference, DEFAULT_K, DEFAULT_TAU))
            out["a_nest_a"][g], out["a_nest_u"][g] = p.against, p.upholds
    return out


def residual(q: np.ndarray, base: np.ndarray, k: int = 10, tau: float = 0.05) -> np.ndarray:
    """q minus the softmax(similarity / tau)-weighted mean of its k nearest rows of base."""
    sims, idx = exact_top_k(q, base, k)
    w = np.exp((sims - sims[:, :1]) / tau)
    w /= w.sum(1, keepdims=True)
    return (q - (w[:, :, None] * base[idx]).sum(1)).astype(np.float32)


# How a variant feeds the value model's opinion to the stacker (default: as the read-out does).
VM_INPUTS = {"shift-no-vm": lambda p: np.full_like(p, 0.5), "shift-vm-clip": lambda p: np.clip(p, 0.047, 0.953)}


class Variants:
    def __init__(self, f: dict[str, np.ndarray], pairs: list[tuple[int, int]]) -> None:
        self.f, self.pairs = f, pairs
        self.d = f["resp"].shape[1]

    def extra(self, variant: str, resp: np.ndarray, pair: np.ndarray, base: np.ndarray) -> np.ndarray:
        """Extra inputs of queries (response embeddings, pair vectors) that may see reference rows `base`."""
        f, d = self.f, self.d
        if variant == "base":
            return np.zeros((len(resp), 0), np.float32)
        if variant in ("shift", *VM_INPUTS):
            return (pair[:, d:] - resp).astype(np.float32)
        if variant == "residual-response":
            return residual(resp, f["resp"][base])
        if variant == "residual-pair":
            return residual(pair[:, d:], f["pair"][base][:, d:])
        if variant == "stance-probe":
            return (np.hstack([pair[:, d:], resp]) @ self.probe(base))[:, None].astype(np.float32) * 3
        raise SystemExit(f"unknown variant {variant!r}")

    def probe(self, rows: np.ndarray, l2: float = 3.0) -> np.ndarray:
        keep = set(rows.tolist())
        x = np.hstack([self.f["pair"][:, self.d:], self.f["resp"]])
        diff = np.array([x[a] - x[b] for a, b in self.pairs if a in keep and b in keep])
        return fit_logistic(np.vstack([diff, -diff]), np.r_[np.ones(len(diff)), np.zeros(len(diff))], l2)[:-1]

    def of_rows(self, variant: str, rows: np.ndarray) -> np.ndarray:
        """Extra inputs of reference rows, each from the rows of the other folds among `rows` (out of fold)."""
        f, out = self.f, None
        for g in np.unique(f["fold"][rows]):
            part, base = rows[f["fold"][rows] == g], rows[f["fold"][rows] != g]
            e = self.extra(variant, f["resp"][part], f["pair"][part], base)
            out = np.zeros((len(f["fold"]), e.shape[1]), np.float32) if out is None else out
            out[part] = e
        return out[rows]


def measure(v: Variants, variant: str, seeds: tuple[int, ...], viol: np.ndarray) -> dict[str, object]:
    f = v.f
    kinds = f["kinds"].astype(str)
    vm = VM_INPUTS.get(variant, lambda p: p)
    against = np.zeros((len(kinds), 10))
    benign, demo = [], []
    for fold in range(5):
        tr, te = np.where(f["fold"] != fold)[0], np.where(f["fold"] == fold)[0]
        ref = ReferenceArrays(f["values"][tr], f["against"][tr], f["upholds"][tr], kinds[tr])
        anchors = AnchorFeatures(np.hstack([f["a_pair"], v.extra(variant, f["a_r"], f["a_pair"], tr)]),
                                 vm(f["a_nest_a"][fold]), vm(f["a_nest_u"][fold]))
        st = Stacker.fit(np.hstack([f["pair"][tr], v.of_rows(variant, tr)]), vm(f["nest_a"][fold][tr]),
                         vm(f["nest_u"][fold][tr]), ref, seeds=seeds, anchors=anchors)
        x = np.hstack([f["pair"][te], v.extra(variant, f["resp"][te], f["pair"][te], tr)])
        against[te] = st.predict(x, vm(f["vm_a"][te]), vm(f["vm_u"][te]))[0]
        for key, out in (("b", benign), ("d", demo)):
            x = np.hstack([f[f"{key}_pair"], v.extra(variant, f[f"{key}_r"], f[f"{key}_pair"], tr)])
            out.append(st.predict(x, vm(f[f"{key}_a"]), vm(f[f"{key}_u"]))[0].max(1))
    score = against.max(1)
    row: dict[str, object] = {"variant": variant}
    for kind, name in (("annotated", "FULCRA"), ("model", "scored")):
        m = kinds == kind
        row[name] = f"{average_precision(viol[m], score[m]):.3f} / {roc_auc(viol[m], score[m]):.3f}"
    row["stance pairs"] = f"{np.mean([1.0 if score[a] > score[b] else 0.5 if score[a] == score[b] else 0.0 for a, b in v.pairs]):.3f}"
    b = np.mean(benign, 0)
    row["benign at R 0.6 / 0.7"] = " / ".join(f"{(b >= np.quantile(score[viol], 1 - r)).mean():.1%}" for r in (0.6, 0.7))
    row["demo"] = " ".join(f"{p:.2f}" for p in np.mean(demo, 0))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="base,shift")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--features", type=Path, default=REPO / "bench-results" / "stacker-features.npz",
                        help="saved features (made once, ~5 minutes; delete to remake)")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.features.is_file():
        with np.load(args.features, allow_pickle=False) as z:
            f = {k: z[k] for k in z.files}
        if "nest_a" not in f:  # saved before the nesting: add it (~3 minutes)
            f.update(nested(reference_fit(), f["fold"]))
            np.savez(args.features, **f)
    else:
        f = prepare(args.features)
    kinds = f["kinds"].astype(str)
    viol = violated_rows(f["values"], kinds)
    v = Variants(f, stance_pair_rows(list(f["prompts"].astype(str)), kinds, viol))
    seeds = tuple(int(s) for s in args.seeds.split(","))
    rows = [measure(v, name, seeds, viol) for name in args.variants.split(",")]
    cols = list(rows[0])
    print(f"stacker seeds {seeds}; 5 grouped folds; {len(v.pairs)} stance pairs; demo: "
          + "; ".join(kind for _, _, kind in DEMO))
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in cols) + " |")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
