"""Linear probes on frozen hidden states (Part 1: where does the parse tree live?).

For every layer (0 = embeddings, l = after block l) and every non-terminal level of the grammar, linear
classifiers read the hidden state at token i and predict the level's NT-ancestor `s_l(i)` and NT-boundary
`b_l(i)` (SPEC 1.1). "ancestor@end" scores the ancestor prediction only where `b_l(i) = 1` (the NT-end
variant). The same probes run on a randomly initialised model of the same shape as the control.

Probes are multinomial logistic regressions fitted full-batch with Adam on standardised features; all heads
of one layer share one linear map (their parameters are disjoint, so this equals fitting them separately).
`tests/test_probe.py` checks the fit against scikit-learn's LogisticRegression on the same features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Target:
    """One classification target over all probed positions."""

    name: str                 # e.g. "ancestor" / "boundary"
    level: int                # grammar level (1 = just below the root)
    labels: np.ndarray        # [positions] int class index
    classes: int
    mask: np.ndarray | None = None  # positions scored for the "@end" variant (None = all)


@torch.no_grad()
def hidden_states(model: torch.nn.Module, sequences: Sequence[np.ndarray], *, batch_size: int = 32, pad_id: int = 1) -> np.ndarray:
    """Hidden states at every position of every sequence: [layers, total_positions, width] float32.

    Sequences are right-padded within a batch; causal attention keeps padding from reaching real tokens.
    """
    device = next(model.parameters()).device
    chunks: list[np.ndarray] = []
    for start in range(0, len(sequences), batch_size):
        batch = sequences[start : start + batch_size]
        longest = max(len(s) for s in batch)
        idx = torch.full((len(batch), longest), pad_id, dtype=torch.long)
        for row, seq in enumerate(batch):
            idx[row, : len(seq)] = torch.as_tensor(np.asarray(seq, dtype=np.int64))
        states = model.hidden_states(idx.to(device)).float().cpu().numpy()  # [L, B, T, W]
        for row, seq in enumerate(batch):
            chunks.append(states[:, row, : len(seq)])
    return np.concatenate(chunks, axis=1)


def fit_linear_probes(
    x_train: np.ndarray,
    y_train: Sequence[np.ndarray],
    classes: Sequence[int],
    *,
    steps: int,
    lr: float,
    weight_decay: float,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    """Fit one softmax head per target on shared features; returns (W, b, mean, std) for `predict`."""
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x = torch.as_tensor((x_train - mean) / std, dtype=torch.float32)
    ys = [torch.as_tensor(y, dtype=torch.long) for y in y_train]
    gen = torch.Generator().manual_seed(seed)
    weight = (torch.randn(x.shape[1], sum(classes), generator=gen) * 0.01).requires_grad_()
    bias = torch.zeros(sum(classes), requires_grad=True)
    opt = torch.optim.Adam([weight, bias], lr=lr)
    splits = np.cumsum([0, *classes])
    for _ in range(steps):
        logits = x @ weight + bias
        loss = sum(F.cross_entropy(logits[:, a:b], y) for a, b, y in zip(splits[:-1], splits[1:], ys))
        loss = loss + weight_decay * weight.pow(2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return weight.detach(), bias.detach(), mean, std


def predict(params: tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray], x: np.ndarray, classes: Sequence[int]) -> list[np.ndarray]:
    weight, bias, mean, std = params
    with torch.no_grad():
        logits = torch.as_tensor((x - mean) / std, dtype=torch.float32) @ weight + bias
    splits = np.cumsum([0, *classes])
    return [logits[:, a:b].argmax(1).numpy() for a, b in zip(splits[:-1], splits[1:])]


def probe_layers(
    states: np.ndarray,
    targets: Sequence[Target],
    train_mask: np.ndarray,
    *,
    steps: int,
    lr: float,
    weight_decay: float,
    seed: int,
) -> list[dict]:
    """Fit and score every target at every layer. Rows: layer, target, level, accuracy, majority, n."""
    rows: list[dict] = []
    classes = [t.classes for t in targets]
    test_mask = ~train_mask
    for layer in range(states.shape[0]):
        x = states[layer]
        params = fit_linear_probes(x[train_mask], [t.labels[train_mask] for t in targets], classes,
                                   steps=steps, lr=lr, weight_decay=weight_decay, seed=seed + layer)
        predictions = predict(params, x[test_mask], classes)
        for target, pred in zip(targets, predictions):
            rows += _score(layer, target, pred, test_mask)
    return rows


def _score(layer: int, target: Target, pred: np.ndarray, test_mask: np.ndarray) -> list[dict]:
    truth = target.labels[test_mask]
    rows = [_row(layer, target.name, target.level, pred, truth)]
    if target.mask is not None:
        at_end = target.mask[test_mask]
        rows.append(_row(layer, f"{target.name}@end", target.level, pred[at_end], truth[at_end]))
    return rows


def _row(layer: int, name: str, level: int, pred: np.ndarray, truth: np.ndarray) -> dict:
    majority = np.bincount(truth).max() / len(truth) if len(truth) else float("nan")
    accuracy = float((pred == truth).mean()) if len(truth) else float("nan")
    return {"layer": layer, "target": name, "level": level, "accuracy": accuracy, "majority": float(majority), "n": int(len(truth))}


def cfg_targets(ancestors: Sequence[Sequence[np.ndarray]], boundaries: Sequence[Sequence[np.ndarray]]) -> list[Target]:
    """Ancestor and boundary targets per NT level from per-sentence label lists (levels 1..D-1)."""
    targets: list[Target] = []
    for level in range(len(ancestors[0])):
        anc = np.concatenate([np.asarray(sent[level]) for sent in ancestors])
        bnd = np.concatenate([np.asarray(sent[level]) for sent in boundaries]).astype(np.int64)
        symbols, index = np.unique(anc, return_inverse=True)
        targets.append(Target("ancestor", level + 1, index, max(len(symbols), 2), mask=bnd == 1))
        targets.append(Target("boundary", level + 1, bnd, 2))
    return targets


def summarize(rows: Sequence[dict], last_layer: int) -> dict[str, float]:
    """Mean accuracy over levels, per target, at the last layer."""
    out: dict[str, float] = {}
    for name in sorted({r["target"] for r in rows}):
        accs = [r["accuracy"] for r in rows if r["layer"] == last_layer and r["target"] == name]
        out[name.replace("@", "_at_")] = float(np.mean(accs))
    return out
