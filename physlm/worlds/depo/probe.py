"""The Depo world's probe step: where, layer by layer, the k-hop answer becomes linearly readable.

At each query's `<ans>` position the model must write the answer's first symbol, so the last layer knows it
as well as the model answers; the question is from which layer on, and whether the intermediate hops are
there too. Per layer (0 = embeddings .. depth) a linear probe (`physlm.probing.fit`: full-batch Adam on
cross-entropy, zero-initialised, over features standardised on the fit rows) reads the residual stream at
`<ans>` of the first `probe.depo.instances` test instances (n = N) and predicts:
- `answer`: the first symbol of the answer, the k-th successor (every query);
- `hop1`: the first symbol of the query's 1st successor, on queries with k >= 2 only: is the first hop still
  (or already) readable where the k-th is being written?
Classes are the 2V symbols; the probes fit on the queries of the first `train_fraction` of the instances and
are scored on the others' (instances never straddle the split). The majority baseline is the fit rows' most
frequent class, scored on the held-out rows. With `control`, the same for a random-init model of the same
shape: its probes show what the query's own tokens give away (nothing about a random cycle's successors).

Table `probe`: one row per model, target and layer. probe.json: per model and target the last layer's
accuracy and the best layer with its accuracy, and the majorities; the headline is the trained model's
answer and hop1 accuracies (last and best layer) and the answer probe's majority baseline.
"""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import torch

from physlm.artifacts import load_model, random_model
from physlm.errors import DataError
from physlm.io import Paths, read_parquet
from physlm.probing import linear_probe, majority_accuracy, states_at
from physlm.worlds import Probed, pick
from physlm.worlds.depo.tokenize import COLUMNS, check_vocab, encode_instances, load_tokens

TARGETS = ("answer", "hop1")




def targets(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """Per query (in order): the class (first symbol - 1) of the answer and of the 1st successor, and k."""
    answer, hop1, ks = [], [], []
    for words, queries, hops, answers in frame.select("words", "queries", "hops", "answers").iter_rows():
        n = len(words)
        answer += [words[a][0] - 1 for a in answers]
        hop1 += [words[(q + 1) % n][0] - 1 for q in queries]
        ks += list(hops)
    return {"answer": np.asarray(answer), "hop1": np.asarray(hop1), "k": np.asarray(ks)}






def probe(paths: Paths, cfg, device: torch.device) -> Probed:
    p = cfg.probe
    tokens = load_tokens(paths.raw)
    check_vocab(paths.tokens, tokens)
    model = load_model(paths.model, device)
    frame = read_parquet(paths.raw / "test.parquet", COLUMNS).head(p.instances)
    if frame.height < 2:
        raise DataError(f"{paths.raw / 'test.parquet'}: the probe needs at least 2 test instances, got {frame.height}")
    instances = encode_instances(frame, tokens)
    if max(len(i.ids) for i in instances) > model.cfg.context:
        raise DataError(f"{paths.raw / 'test.parquet'}: test instances are longer than the model context {model.cfg.context}"
                        " (raise tokenize.context)")
    labels = targets(frame)
    fit_instances = min(max(1, round(p.train_fraction * len(instances))), len(instances) - 1)
    fit_rows = np.repeat(np.arange(len(instances)) < fit_instances, [len(i.ans_at) for i in instances])
    use = {"answer": np.ones(len(fit_rows), dtype=bool), "hop1": labels["k"] >= 2}
    classes = 2 * tokens.spec.vocab
    models = {"trained": model} | ({"control": random_model(model.cfg, cfg.seed + 1, device)} if p.control else {})
    rows: list[dict] = []
    for name, net in models.items():
        states = states_at(net, [i.ids for i in instances], [i.ans_at for i in instances], batch_size=p.batch_size)
        for target in TARGETS:
            keep = use[target]
            y, on = labels[target][keep], fit_rows[keep]
            if on.all() or not on.any():
                continue  # no held-out (or no fit) rows of this target
            base = majority_accuracy(y, on)
            for layer in range(states.shape[0]):
                acc = linear_probe(states[layer][keep], y, on, classes, steps=p.steps, lr=p.lr)
                rows.append({"model": name, "target": target, "layer": layer, "accuracy": acc, "majority": base,
                             "fit": int(on.sum()), "scored": int((~on).sum())})
    summary = summarize(rows) | {"instances": len(instances), "queries": int(len(fit_rows)), "N": tokens.spec.N,
                                 "K": tokens.spec.K}
    line = ", ".join(f"{m}/{t}: last {v['last']:.3f}, best {v['best']:.3f} @ layer {v['best_layer']} (majority {v['majority']:.3f})"
                     for m in models for t, v in summary.get(m, {}).items())
    headline = pick(summary, {"answer_last": ("trained", "answer", "last"), "answer_best": ("trained", "answer", "best"),
                              "hop1_last": ("trained", "hop1", "last"), "hop1_best": ("trained", "hop1", "best"),
                              "answer_majority": ("trained", "answer", "majority"),
                              "answer_last_control": ("control", "answer", "last")})
    log = {f"{m}_{t}_{key}": v[key] for m in models for t, v in summary.get(m, {}).items() for key in ("last", "best")}
    return Probed(summary, {"probe": rows}, log, line, headline)


def summarize(rows: list[dict]) -> dict:
    """{model: {target: {last, best, best_layer, majority}}} from the table's rows."""
    out: dict = {}
    for (m, t), group in itertools.groupby(sorted(rows, key=lambda r: (r["model"], r["target"], r["layer"])),
                                           key=lambda r: (r["model"], r["target"])):
        group = list(group)
        best = max(group, key=lambda r: (r["accuracy"], -r["layer"]))
        out.setdefault(m, {})[t] = {"last": group[-1]["accuracy"], "best": best["accuracy"], "best_layer": best["layer"],
                                    "majority": group[0]["majority"]}
    return out
