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

bioS(N) and bioS^simple(N) (`biosn`): the same probe at the same place, the last of the name's three tokens after
`<bos>`, of each attribute's value class, its index in its pool: the birth date's month (12 classes, the date's
first token, as Part 3.1's probes take it), the birth city, university, major and employer (as many classes as
the pool used), the work city (one class per distinct headquarters city of the employers used), the first
`probe.capacity.attributes` of them in that order.

Table `probe`: one row per model, layer and attribute; probe.json: per model, the last and best layer's mean
accuracy over the attributes, and the majority baseline.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from physlm.artifacts import load_model, random_model
from physlm.bios.people import ATTRIBUTES, load_pools
from physlm.errors import DataError
from physlm.io import Paths, read_parquet
from physlm.probing import linear_probe, majority_accuracy, states_at
from physlm.worlds import Probed
from physlm.worlds.capacity import biosn
from physlm.worlds.capacity.tokenize import check_vocab, domain_token_id, read_spec

NAME = {"first": pl.String, "middle": pl.String, "last": pl.String}


def biod_targets(raw, spec, people: int, attributes: int) -> tuple[pl.DataFrame, np.ndarray, dict]:
    """bioD: (the people's names, [people, attributes] first chunk ids, what the probe reads) of attributes 1..A."""
    frame = read_parquet(raw / "people.parquet", NAME | {"chunks": pl.List(pl.List(pl.Int64))}).head(people)
    if attributes > spec.K:
        raise DataError(f"{raw}: probe.attributes {attributes} exceeds K = {spec.K}")
    labels = np.asarray(frame["chunks"].to_list()).reshape(frame.height, spec.K, -1)[:, :attributes, 0]
    return frame, labels, {"attributes": list(range(1, attributes + 1)), "target": "first chunk", "classes": spec.D}


def bios_targets(raw, spec: biosn.Spec, people: int, attributes: int) -> tuple[pl.DataFrame, np.ndarray, dict]:
    """bioS: (the people's names, [people, attributes] value classes, what the probe reads) of the first A of
    ATTRIBUTES (the birth date's class is its month)."""
    if attributes > len(ATTRIBUTES):
        raise DataError(f"{raw}: probe.attributes {attributes} exceeds the {len(ATTRIBUTES)} bioS attributes")
    pools = load_pools(spec.pools)
    values = {"birth_city": pools.cities, "university": pools.universities, "major": pools.majors,
              "employer": pools.employers, "work_city": tuple(dict.fromkeys(pools.headquarters[e] for e in pools.employers))}
    columns = {a: pl.String for a in values} | {"birth_month": pl.Int8}
    frame = read_parquet(raw / "people.parquet", NAME | columns).head(people)
    chosen = ATTRIBUTES[:attributes]
    index = {a: {v: k for k, v in enumerate(pool)} for a, pool in values.items()}
    labels = np.asarray([frame["birth_month"].to_numpy().astype(np.int64) - 1 if a == "birth_date" else
                         np.asarray([index[a][v] for v in frame[a]]) for a in chosen]).T.reshape(frame.height, attributes)
    classes = [12 if a == "birth_date" else len(values[a]) for a in chosen]
    return frame, labels, {"attributes": list(chosen), "target": "value class (birth date: month)", "classes": dict(zip(chosen, classes))}


def probe(paths: Paths, cfg, device: torch.device) -> Probed:
    p = cfg.probe
    spec = read_spec(paths.raw)
    vocab = check_vocab(paths.tokens, spec)
    ids = {s: i for i, s in enumerate(vocab.symbols)}
    targets = bios_targets if isinstance(spec, biosn.Spec) else biod_targets
    people, labels, what = targets(paths.raw, spec, p.people, p.attributes)  # labels: [people, attributes]
    if people.height < 4:
        raise DataError(f"{paths.raw}: the probe needs >= 4 people (got {people.height})")
    classes = what["classes"]
    counts = list(classes.values()) if isinstance(classes, dict) else [classes] * p.attributes
    marker = domain_token_id(paths.tokens)
    head = [vocab.bos_id] + ([] if marker is None else [marker])
    prompts = [head + [ids[f], ids[m], ids[last]] for f, m, last in people.select("first", "middle", "last").iter_rows()]
    fit_rows = min(max(1, round(p.train_fraction * len(prompts))), len(prompts) - 1)
    on = np.arange(len(prompts)) < fit_rows
    model = load_model(paths.model, device)
    models = {"trained": model} | ({"control": random_model(model.cfg, cfg.seed + 1, device)} if p.control else {})
    majority = float(np.mean([majority_accuracy(labels[:, a], on) for a in range(p.attributes)]))
    chance = float(np.mean([1.0 / c for c in counts])) if isinstance(classes, dict) else 1.0 / classes
    table, summary = [], {"people": len(prompts), "fit": fit_rows, "attributes": p.attributes, "classes": classes,
                          "majority": majority, "chance": chance}
    for name, m in models.items():
        states = states_at(m, prompts, [[len(head) + 2]] * len(prompts), batch_size=p.batch_size)  # at the last name token
        by_layer = []
        for layer, x in enumerate(states):
            scores = [linear_probe(x, labels[:, a], on, counts[a], steps=p.steps, lr=p.lr) for a in range(p.attributes)]
            table += [{"model": name, "layer": layer, "attribute": what["attributes"][a], "position": "last name token", "target": what["target"],
                       "fit": fit_rows, "scored": len(prompts) - fit_rows, "accuracy": s,
                       "majority": majority_accuracy(labels[:, a], on)} for a, s in enumerate(scores)]
            by_layer.append(float(np.mean(scores)))
        best = int(np.argmax(by_layer))
        summary[name] = {"last": by_layer[-1], "best": by_layer[best], "best_layer": best, "by_layer": by_layer}
    headline = {f"{name}_{k}": summary[name][k] for name in models for k in ("last", "best")}
    line = f"{what['target']} at the name: " + ", ".join(f"{name} last layer {summary[name]['last']:.3f}" for name in models) + \
        f" (majority {majority:.3f}, chance {chance:.3f})"
    return Probed(summary, {"probe": table}, headline, line, headline)
