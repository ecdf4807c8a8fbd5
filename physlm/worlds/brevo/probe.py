"""The Brevo world's probe step: does the model know how deep the query sits before it starts answering? A linear
probe reads the query's depth (its shortest distance to a leaf of its ancestor set, classes 1..9, deeper clipped to
9 as the released code's `token_type` does) from the residual stream at `<ans>`, after the embedding (layer 0) and
after every block, for `probe.brevo.examples` test instances (n = N; fit on the first `train_fraction`, scored on the
rest), for the trained model and, with `control`, a random-init one of the same shape.

What it shows: to list the ancestors in a topological order the model must find the leaves it has to start from,
which lie `depth` edges above the query; depth is a property of the whole graph, not of any one token, so a probe
well above the majority baseline (most queries sit 2-3 edges from a leaf) at a layer says the model has already
traced the dependency chain that far back by then; the random-init control bounds what a linear map reads from
untrained features of the same tokens.

The probe (`physlm.probing.linear_probe`): features standardised on the fit rows, a zero-initialised linear map trained by
full-batch Adam on cross-entropy (`physlm.probing.fit`), so it needs no seed. Table `probe`: one row per model and
layer; probe.json: the last layer's and the best layer's accuracy per model, and the baselines.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from physlm.artifacts import load_model, random_model
from physlm.errors import DataError
from physlm.io import Paths
from physlm.probing import linear_probe, majority_accuracy, states_at
from physlm.worlds import Probed
from physlm.worlds.brevo.frames import read_instances, read_layout
from physlm.worlds.brevo.tokenize import check_vocab

MAX_DEPTH = 9  # deeper queries share class 9 (the released code's fake_depth)






def probe(paths: Paths, cfg, device: torch.device) -> Probed:
    p = cfg.probe
    layout = read_layout(paths.raw)
    check_vocab(paths.tokens, layout)
    model = load_model(paths.model, device)
    instances = read_instances(paths.raw / "test.parquet", layout, p.examples)
    if len(instances) < 4:
        raise DataError(f"{paths.raw / 'test.parquet'}: the probe needs at least 4 test instances, got {len(instances)}")
    fit_rows = min(max(1, round(p.train_fraction * len(instances))), len(instances) - 1)
    prompts = [layout.prompt(inst) for inst in instances]
    on = np.arange(len(instances)) < fit_rows
    y = np.asarray([min(inst.depth, MAX_DEPTH) for inst in instances])
    majority = majority_accuracy(y, on)
    models = {"trained": model} | ({"control": random_model(model.cfg, cfg.seed + 1, device)} if p.control else {})
    table, summary = [], {"examples": len(instances), "majority": majority,
                          "depths": {str(k): v for k, v in sorted(Counter(y.tolist()).items())}}
    for name, m in models.items():
        states = states_at(m, prompts, [[len(q) - 1] for q in prompts], batch_size=p.batch_size)  # at <ans>
        accuracy = [linear_probe(layer, y, on, MAX_DEPTH + 1, steps=p.steps, lr=p.lr) for layer in states]
        table += [{"model": name, "layer": layer, "position": "<ans>", "target": "depth", "fit": fit_rows,
                   "scored": len(instances) - fit_rows, "accuracy": a, "majority": majority} for layer, a in enumerate(accuracy)]
        best = int(np.argmax(accuracy))
        summary[name] = {"last": accuracy[-1], "best": accuracy[best], "best_layer": best, "by_layer": accuracy}
    headline = {f"{name}_{k}": summary[name][k] for name in models for k in ("last", "best")}
    line = "query depth at <ans>: " + ", ".join(f"{name} last layer {summary[name]['last']:.3f} (best {summary[name]['best']:.3f}"
                                                f" at layer {summary[name]['best_layer']})" for name in models) + f", majority {majority:.3f}"
    return Probed(summary, {"probe": table}, headline, line, headline)
