"""The toy world's probe step: does the residual stream at the separator know the first letter (which the copy
must write next)? A linear probe (`physlm.probing.fit`: full-batch Adam on cross-entropy, zero-initialised, so
it needs no seed, over features standardised on the fit rows) reads the last block's state at `=` of
`probe.toy.examples` held-out test examples, fit on the first `train_fraction` of them and scored on the rest,
for the trained model and, with `control`, a random-init one of the same shape. Table `probe`: one row per
model; probe.json: the accuracies and the majority baseline."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from physlm.artifacts import load_model, random_model
from physlm.errors import DataError
from physlm.io import Paths
from physlm.probing import fit, hidden_states
from physlm.worlds import Probed

from .tokenize import LETTERS, check_vocab, prompt, read_texts


def linear_probe(x: torch.Tensor, y: torch.Tensor, fit_rows: int, *, steps: int, lr: float) -> float:
    """Accuracy on rows fit_rows.. of a linear map fit on rows ..fit_rows (classes: the 26 letters)."""
    mean, std = x[:fit_rows].mean(0), x[:fit_rows].std(0, correction=0) + 1e-6  # standardised on the fit rows: the separator's
    x = (x - mean) / std                                            # state barely varies in a random-init model
    head = nn.Linear(x.shape[1], len(LETTERS)).to(x.device)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    batches = itertools.repeat((x[:fit_rows], y[:fit_rows]), steps)
    fit(head.parameters(), batches, lambda b: F.cross_entropy(head(b[0]), b[1]), lr=lr, decoupled=False)
    with torch.no_grad():
        return float((head(x[fit_rows:]).argmax(-1) == y[fit_rows:]).float().mean())


def probe(paths: Paths, cfg, device: torch.device) -> Probed:
    p = cfg.probe
    check_vocab(paths.tokens)
    model = load_model(paths.model, device)
    texts = read_texts(paths.raw / "test.parquet")[: p.examples]
    if len(texts) < 2:
        raise DataError(f"{paths.raw / 'test.parquet'}: the probe needs at least 2 test examples, got {len(texts)}")
    fit_rows = min(max(1, round(p.train_fraction * len(texts))), len(texts) - 1)
    sequences = [np.asarray(prompt(t)) for t in texts]
    at_sep = np.cumsum([len(s) for s in sequences]) - 1  # each sequence's last position: its separator
    y = torch.as_tensor([LETTERS.index(t[0]) for t in texts], device=device)
    common = Counter(y[:fit_rows].tolist()).most_common(1)[0][0]
    majority = float((y[fit_rows:] == common).float().mean())
    models = {"trained": model} | ({"control": random_model(model.cfg, cfg.seed + 1, device)} if p.control else {})
    rows = []
    for name, m in models.items():
        states = hidden_states(m, sequences)[-1, at_sep]  # [examples, width]: after the last block
        x = torch.as_tensor(states, device=device)
        accuracy = linear_probe(x, y, fit_rows, steps=p.steps, lr=p.lr)
        rows.append({"model": name, "layer": m.cfg.depth, "position": "separator", "target": "first_letter",
                     "fit": fit_rows, "scored": len(texts) - fit_rows, "accuracy": accuracy, "majority": majority})
    summary = {f"{r['model']}_accuracy": r["accuracy"] for r in rows} | {"majority": majority, "examples": len(texts)}
    scores = ", ".join(f"{r['model']} {r['accuracy']:.3f}" for r in rows)
    line = f"first letter at the separator: {scores} (majority {majority:.3f})"
    return Probed(summary, {"probe": rows}, summary, line, headline={k: v for k, v in summary.items() if k.endswith("_accuracy")})
