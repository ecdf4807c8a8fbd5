"""The Mano world's probe step: at which layer does the answer exist? A linear probe reads the expression's value
(23 classes) from the residual stream at the `<ans>` marker, after the embedding (layer 0) and after every block,
for `probe.mano.examples` test expressions of L operations (fit on the first `train_fraction`, scored on the rest),
for the trained model and, with `control`, a random-init one of the same shape.

What it shows: Mano has no chain of thought, so the value must be computed inside the forward pass that ends at
`<ans>`; the layer where the probe first climbs far above chance (1/23 and the majority baseline) is the depth
at which the model has finished the arithmetic, and a trained model that answers well but whose earlier layers
stay at chance computes in its last blocks. The random-init control bounds what a linear map reads from
untrained features of the same tokens (with 2L + 3 tokens before it, it stays near chance).

The probe (`physlm.probing.linear_probe`): features standardised on the fit rows, a zero-initialised linear map trained by
full-batch Adam on cross-entropy (`physlm.probing.fit`), so it needs no seed. Table `probe`: one row per model and
layer; probe.json: the last layer's and the best layer's accuracy per model, and the baselines.
"""

from __future__ import annotations


import numpy as np
import torch

from physlm.artifacts import load_model, random_model
from physlm.errors import DataError
from physlm.io import Paths
from physlm.probing import linear_probe, majority_accuracy, states_at
from physlm.worlds import Probed
from physlm.worlds.mano.tokenize import check_vocab, read_modulus, read_rows






def probe(paths: Paths, cfg, device: torch.device) -> Probed:
    p = cfg.probe
    check_vocab(paths.tokens)
    modulus = read_modulus(paths.raw)
    model = load_model(paths.model, device)
    rows = read_rows(paths.raw / "test.parquet", p.examples)
    if len(rows) < 4:
        raise DataError(f"{paths.raw / 'test.parquet'}: the probe needs at least 4 test examples, got {len(rows)}")
    fit_rows = min(max(1, round(p.train_fraction * len(rows))), len(rows) - 1)
    on = np.arange(len(rows)) < fit_rows
    prompts = [r.prompt for r in rows]
    y = np.asarray([r.value for r in rows])
    majority = majority_accuracy(y, on)
    models = {"trained": model} | ({"control": random_model(model.cfg, cfg.seed + 1, device)} if p.control else {})
    table, summary = [], {"examples": len(rows), "majority": majority, "modulus": modulus, "chance": 1.0 / modulus}
    for name, m in models.items():
        states = states_at(m, prompts, [[len(q) - 1] for q in prompts], batch_size=p.batch_size)  # at <ans>, the prompt's last token
        accuracy = [linear_probe(layer, y, on, modulus, steps=p.steps, lr=p.lr) for layer in states]
        table += [{"model": name, "layer": layer, "position": "<ans>", "target": "value", "fit": fit_rows,
                   "scored": len(rows) - fit_rows, "accuracy": a, "majority": majority} for layer, a in enumerate(accuracy)]
        best = int(np.argmax(accuracy))
        summary[name] = {"last": accuracy[-1], "best": accuracy[best], "best_layer": best, "by_layer": accuracy}
    headline = {f"{name}_{k}": summary[name][k] for name in models for k in ("last", "best")}
    line = "value at <ans>: " + ", ".join(f"{name} last layer {summary[name]['last']:.3f} (best {summary[name]['best']:.3f} at "
                                          f"layer {summary[name]['best_layer']})" for name in models) + f", majority {majority:.3f}"
    return Probed(summary, {"probe": table}, headline, line, headline)
