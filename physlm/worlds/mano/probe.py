"""The Mano world's probe step: at which layer does the answer exist? A linear probe reads the expression's value
(23 classes) from the residual stream at the `<ans>` marker, after the embedding (layer 0) and after every block,
for `probe.mano.examples` test expressions of L operations (fit on the first `train_fraction`, scored on the rest),
for the trained model and, with `control`, a random-init one of the same shape.

What it shows: Mano has no chain of thought, so the value must be computed inside the forward pass that ends at
`<ans>`; the layer where the probe first climbs far above chance (1/23 and the majority baseline) is the depth
at which the model has finished the arithmetic, and a trained model that answers well but whose earlier layers
stay at chance computes in its last blocks. The random-init control bounds what a linear map reads from
untrained features of the same tokens (with 2L + 3 tokens before it, it stays near chance).

The probe (`linear_probe`): features standardised on the fit rows, a zero-initialised linear map trained by
full-batch Adam on cross-entropy (`physlm.probing.fit`), so it needs no seed. Table `probe`: one row per model and
layer; probe.json: the last layer's and the best layer's accuracy per model, and the baselines.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from physlm.artifacts import load_model, random_model
from physlm.errors import DataError
from physlm.io import Paths
from physlm.probing import fit
from physlm.worlds import Probed
from physlm.worlds.mano.expression import MOD
from physlm.worlds.mano.tokenize import check_vocab, read_rows


def linear_probe(x: torch.Tensor, y: torch.Tensor, fit_rows: int, classes: int, *, steps: int, lr: float) -> float:
    """Accuracy on rows fit_rows.. of a linear map to `classes` classes fit on rows ..fit_rows."""
    mean, std = x[:fit_rows].mean(0), x[:fit_rows].std(0, correction=0) + 1e-6
    x = (x - mean) / std
    head = nn.Linear(x.shape[1], classes).to(x.device)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    batches = itertools.repeat((x[:fit_rows], y[:fit_rows]), steps)
    with torch.enable_grad():
        fit(head.parameters(), batches, lambda b: F.cross_entropy(head(b[0]), b[1]), lr=lr, decoupled=False)
    with torch.no_grad():
        return float((head(x[fit_rows:]).argmax(-1) == y[fit_rows:]).float().mean())


@torch.no_grad()
def states_at_last(model: torch.nn.Module, prompts: Sequence[Sequence[int]], batch_size: int) -> torch.Tensor:
    """[layers, prompts, width]: every layer's residual stream at each prompt's last token (right-padded batches:
    causal attention keeps the padding from the real tokens)."""
    device = next(model.parameters()).device
    out = []
    for lo in range(0, len(prompts), batch_size):
        rows = prompts[lo : lo + batch_size]
        idx = torch.zeros(len(rows), max(len(p) for p in rows), dtype=torch.long)
        for r, p in enumerate(rows):
            idx[r, : len(p)] = torch.as_tensor(list(p))
        states = model.hidden_states(idx.to(device))  # [layers, B, T, width]
        last = torch.as_tensor([len(p) - 1 for p in rows], device=device)
        out.append(states[:, torch.arange(len(rows), device=device), last].float())
    return torch.cat(out, dim=1)


def probe(paths: Paths, cfg, device: torch.device) -> Probed:
    p = cfg.probe
    check_vocab(paths.tokens)
    model = load_model(paths.model, device)
    rows = read_rows(paths.raw / "test.parquet", p.examples)
    if len(rows) < 4:
        raise DataError(f"{paths.raw / 'test.parquet'}: the probe needs at least 4 test examples, got {len(rows)}")
    fit_rows = min(max(1, round(p.train_fraction * len(rows))), len(rows) - 1)
    prompts = [r.prompt for r in rows]
    y = torch.as_tensor([r.value for r in rows], device=device)
    common = Counter(y[:fit_rows].tolist()).most_common(1)[0][0]
    majority = float((y[fit_rows:] == common).float().mean())
    models = {"trained": model} | ({"control": random_model(model.cfg, cfg.seed + 1, device)} if p.control else {})
    table, summary = [], {"examples": len(rows), "majority": majority, "chance": 1.0 / MOD}
    for name, m in models.items():
        states = states_at_last(m, prompts, p.batch_size)  # at <ans>, the prompt's last token
        accuracy = [linear_probe(layer, y, fit_rows, MOD, steps=p.steps, lr=p.lr) for layer in states]
        table += [{"model": name, "layer": layer, "position": "<ans>", "target": "value", "fit": fit_rows,
                   "scored": len(rows) - fit_rows, "accuracy": a, "majority": majority} for layer, a in enumerate(accuracy)]
        best = int(np.argmax(accuracy))
        summary[name] = {"last": accuracy[-1], "best": accuracy[best], "best_layer": best, "by_layer": accuracy}
    headline = {f"{name}_{k}": summary[name][k] for name in models for k in ("last", "best")}
    line = "value at <ans>: " + ", ".join(f"{name} last layer {summary[name]['last']:.3f} (best {summary[name]['best']:.3f} at "
                                          f"layer {summary[name]['best_layer']})" for name in models) + f", majority {majority:.3f}"
    return Probed(summary, {"probe": table}, headline, line, headline)
