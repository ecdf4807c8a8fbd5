"""The capacity world's probe step: is each person's knowledge attached to the name?

The model reads only `<bos> first middle last`; at the last name token, after the embedding (layer 0) and after
every block, a linear probe (`physlm.probing.linear_probe`, no seed needed) predicts the first chunk id of
attribute a (D classes) for a = 1 .. `probe.capacity.attributes`, fit on `train_fraction` of `people` people and
scored on the others. The name comes first in every paragraph, so this state is the one the model predicts the
first sentence from; a probe far above the majority baseline on people it was not fit on says the attribute is
linearly readable from the name (Part 3.1's Q-probing, in miniature). With `control`, a random-init model of the
same shape bounds what a linear map reads from untrained features of the name tokens. Where the dataset has the
domain token (tokenize.domain_token), the prompt is `<bos> <useful> first middle last`, as the model saw its
useful people.

Table `probe`: one row per model, layer and attribute; probe.json: per model, the last and best layer's mean
accuracy over the attributes, and the majority baseline.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from physlm.artifacts import load_model, random_model
from physlm.errors import DataError
from physlm.io import Paths, read_parquet
from physlm.probing import linear_probe, majority_accuracy, states_at
from physlm.worlds import Probed
from physlm.worlds.capacity.tokenize import check_vocab, domain_token_id, read_spec


def probe(paths: Paths, cfg, device: torch.device) -> Probed:
    p = cfg.probe
    spec = read_spec(paths.raw)
    vocab = check_vocab(paths.tokens, spec)
    ids = {s: i for i, s in enumerate(vocab.symbols)}
    people = read_parquet(paths.raw / "people.parquet", {"first": pl.String, "middle": pl.String, "last": pl.String,
                                                         "chunks": pl.List(pl.List(pl.Int64))}).head(p.people)
    if people.height < 4 or p.attributes > spec.K:
        raise DataError(f"{paths.raw}: the probe needs >= 4 people and probe.attributes <= K = {spec.K} (got {people.height},"
                        f" {p.attributes})")
    marker = domain_token_id(paths.tokens)
    head = [vocab.bos_id] + ([] if marker is None else [marker])
    prompts = [head + [ids[f], ids[m], ids[last]] for f, m, last in people.select("first", "middle", "last").iter_rows()]
    first_chunk = np.asarray(people["chunks"].to_list())[:, : p.attributes, 0]  # [people, attributes]
    fit_rows = min(max(1, round(p.train_fraction * len(prompts))), len(prompts) - 1)
    on = np.arange(len(prompts)) < fit_rows
    model = load_model(paths.model, device)
    models = {"trained": model} | ({"control": random_model(model.cfg, cfg.seed + 1, device)} if p.control else {})
    majority = float(np.mean([majority_accuracy(first_chunk[:, a], on) for a in range(p.attributes)]))
    table, summary = [], {"people": len(prompts), "fit": fit_rows, "attributes": p.attributes, "classes": spec.D,
                          "majority": majority, "chance": 1.0 / spec.D}
    for name, m in models.items():
        states = states_at(m, prompts, [[len(head) + 2]] * len(prompts), batch_size=p.batch_size)  # at the last name token
        by_layer = []
        for layer, x in enumerate(states):
            scores = [linear_probe(x, first_chunk[:, a], on, spec.D, steps=p.steps, lr=p.lr) for a in range(p.attributes)]
            table += [{"model": name, "layer": layer, "attribute": a + 1, "position": "last name token", "target": "first chunk",
                       "fit": fit_rows, "scored": len(prompts) - fit_rows, "accuracy": s,
                       "majority": majority_accuracy(first_chunk[:, a], on)} for a, s in enumerate(scores)]
            by_layer.append(float(np.mean(scores)))
        best = int(np.argmax(by_layer))
        summary[name] = {"last": by_layer[-1], "best": by_layer[best], "best_layer": best, "by_layer": by_layer}
    headline = {f"{name}_{k}": summary[name][k] for name in models for k in ("last", "best")}
    line = "first chunk at the name: " + ", ".join(f"{name} last layer {summary[name]['last']:.3f}" for name in models) + \
        f" (majority {majority:.3f}, chance {1 / spec.D:.3f})"
    return Probed(summary, {"probe": table}, headline, line, headline)
