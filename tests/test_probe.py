"""The linear probes agree with scikit-learn's logistic regression on the same features (the oracle); the
multi-head probe is exactly linear in the states, looks only left, and reads left context that a per-position
probe cannot; hidden states of an encoder are not contaminated by padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from physlm.mlm import encoder_config
from physlm.model import GPT, GPTConfig
from physlm.worlds.cfg.probes import (
    MultiHeadProbe,
    Target,
    cfg_targets,
    fit_linear_probes,
    predict,
    probe_layers,
    probe_layers_multihead,
)
from physlm.probing import hidden_states

pytestmark = pytest.mark.usefixtures("one_thread")


def synthetic(n: int = 3000, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    w = rng.normal(size=(dim, 3))
    y3 = (x @ w + rng.gumbel(size=(n, 3))).argmax(1)
    y2 = (x[:, 0] - 0.5 * x[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(np.int64)
    return x, y3, y2


def test_matches_sklearn_on_the_same_features() -> None:
    x, y3, y2 = synthetic()
    fit, test = slice(0, 2000), slice(2000, None)
    params = fit_linear_probes(x[fit], [y3[fit], y2[fit]], [3, 2], steps=300, lr=0.05, weight_decay=1e-4, seed=0)
    ours = predict(params, x[test], [3, 2])
    for y, pred in zip((y3, y2), ours):
        oracle = LogisticRegression(max_iter=2000).fit(x[fit], y[fit]).predict(x[test])
        assert abs((pred == y[test]).mean() - (oracle == y[test]).mean()) < 0.02
        assert (pred == oracle).mean() > 0.95


def test_probe_layers_rows_and_controls() -> None:
    x, y3, y2 = synthetic(n=1000)
    states = np.stack([x, np.random.default_rng(1).normal(size=x.shape).astype(np.float32)])  # layer 1 = noise
    targets = [Target("ancestor", 1, y3, 3, mask=y2 == 1), Target("boundary", 1, y2, 2)]
    train_mask = np.arange(1000) < 700
    rows = probe_layers(states, targets, train_mask, steps=200, lr=0.05, weight_decay=1e-4, seed=0)
    acc = {(r["layer"], r["target"]): r["accuracy"] for r in rows}
    assert acc[(0, "ancestor")] > 0.75 and acc[(0, "boundary")] > 0.85
    assert acc[(1, "ancestor")] < 0.5 and acc[(1, "boundary")] < 0.65  # noise features: near chance
    assert {r["target"] for r in rows} == {"ancestor", "ancestor@end", "boundary"}
    assert all(r["n"] == 300 for r in rows if r["target"] != "ancestor@end")


def test_cfg_targets_shapes() -> None:
    anc = [[np.array([5, 5, 6]), np.array([7, 8, 8])], [np.array([6, 6]), np.array([8, 7])]]
    bnd = [[np.array([0, 1, 1]), np.array([1, 0, 1])], [np.array([0, 1]), np.array([1, 1])]]
    targets = cfg_targets(anc, bnd)
    assert [(t.name, t.level) for t in targets] == [("ancestor", 1), ("boundary", 1), ("ancestor", 2), ("boundary", 2)]
    assert targets[0].labels.tolist() == [0, 0, 1, 1, 1]
    assert targets[0].mask.tolist() == [False, True, True, False, True]


def random_probe(width: int = 12, classes: tuple[int, ...] = (3, 2), length: int = 20) -> MultiHeadProbe:
    """A multi-head probe with non-trivial parameters everywhere (the output map is tiny at init)."""
    probe = MultiHeadProbe(width, classes, length, heads=4, rank=3, pos_dim=5, seed=1).double()
    with torch.no_grad():
        probe.out.normal_(generator=torch.Generator().manual_seed(2))
        probe.bias.normal_(generator=torch.Generator().manual_seed(3))
    return probe


def test_multihead_probe_is_linear_in_the_states() -> None:
    probe = random_probe()
    gen = torch.Generator().manual_seed(0)
    x1, x2 = (torch.randn(3, 20, 12, generator=gen, dtype=torch.float64) for _ in range(2))
    with torch.no_grad():
        bias = probe(torch.zeros_like(x1))
        f1, f2, mixed = probe(x1) - bias, probe(x2) - bias, probe(2.5 * x1 - 0.7 * x2) - bias
    assert torch.equal(bias, probe.bias.expand_as(bias))  # the affine part is the bias alone
    assert torch.allclose(mixed, 2.5 * f1 - 0.7 * f2, rtol=0, atol=1e-10)
    assert f1.abs().mean() > 0.1  # not trivially zero


def test_multihead_probe_looks_only_left() -> None:
    probe = random_probe()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 20, 12, generator=gen, dtype=torch.float64)
    for i in (0, 7, 18):
        changed = x.clone()
        changed[:, i + 1 :] = torch.randn(2, 19 - i, 12, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            before, after = probe(x), probe(changed)
        assert torch.equal(before[:, : i + 1], after[:, : i + 1])  # positions <= i unchanged, bit for bit
        assert not torch.allclose(before[:, i + 1 :], after[:, i + 1 :])  # later positions do see the change
    weights = probe.mixing(20)
    assert torch.allclose(weights.sum(-1), torch.ones(4, 20, dtype=torch.float64))
    assert (weights.triu(1) == 0).all()


def lagged(n: int = 150, dim: int = 16, lag: int = 2, seed: int = 0):
    """Sentences of 8..24 positions of Gaussian features whose class is `now` = argmax(x W); the target
    `lag` at position i is the class of position i - lag (of position 0 for i < lag)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(8, 25, n)
    x = rng.normal(size=(lengths.sum(), dim)).astype(np.float32)
    now = (x @ rng.normal(size=(dim, 3))).argmax(1)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    position = np.arange(lengths.sum()) - starts
    lag_labels = now[starts + np.maximum(position - lag, 0)]
    return x, lengths, now, lag_labels, position


def test_multihead_probe_reads_left_context_a_per_position_probe_cannot() -> None:
    x, lengths, now, lag_labels, position = lagged()
    targets = [Target("lag", 1, lag_labels, 3, mask=position >= 2), Target("now", 1, now, 3)]
    train_mask = np.repeat(np.arange(len(lengths)) < 100, lengths)
    kw = {"steps": 150, "lr": 0.05, "weight_decay": 1e-4, "seed": 0}
    linear = probe_layers(x[None], targets, train_mask, **kw)
    multi = probe_layers_multihead(x[None], targets, train_mask, lengths, heads=8, rank=8, pos_dim=8, **kw)
    lin = {r["target"]: r["accuracy"] for r in linear}
    mh = {r["target"]: r["accuracy"] for r in multi}
    assert lin["now"] > 0.9 and mh["now"] > 0.85  # both read the state at i
    assert lin["lag@end"] < 0.45  # the state at i says nothing about i - 2: chance (3 balanced-ish classes)
    assert mh["lag@end"] > 0.8 and mh["lag"] > 0.8
    assert {r["probe"] for r in linear} == {"linear"} and {r["probe"] for r in multi} == {"multihead"}
    assert [(r["target"], r["n"]) for r in multi] == [(r["target"], r["n"]) for r in linear]
    assert multi[0]["n"] == int(lengths[100:].sum())
    again = probe_layers_multihead(x[None], targets, train_mask, lengths, heads=8, rank=8, pos_dim=8,
                                   **{**kw, "steps": 5})
    assert again == probe_layers_multihead(x[None], targets, train_mask, lengths, heads=8, rank=8, pos_dim=8,
                                           **{**kw, "steps": 5})  # deterministic
    with pytest.raises(ValueError, match="constant within each sentence"):
        probe_layers_multihead(x[None], targets, np.arange(len(x)) < 1000, lengths, **kw)


def test_multihead_probe_mini_batches() -> None:
    x, lengths, _, lag_labels, _ = lagged()
    targets = [Target("lag", 1, lag_labels, 3)]
    train_mask = np.repeat(np.arange(len(lengths)) < 100, lengths)
    rows = probe_layers_multihead(x[None], targets, train_mask, lengths, steps=150, lr=0.05, weight_decay=1e-4,
                                  seed=0, heads=8, rank=8, pos_dim=8, batch_size=25)
    assert rows[0]["accuracy"] > 0.8


def test_hidden_states_of_an_encoder_ignore_padding() -> None:
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=10, context=16, depth=2, width=16, heads=2)
    rng = np.random.default_rng(0)
    sequences = [rng.integers(2, 10, n) for n in (5, 9, 5, 12, 9)]
    for model in (GPT(cfg).eval(), GPT(encoder_config(cfg)).eval()):
        batched = hidden_states(model, sequences, batch_size=4)
        with torch.no_grad():
            alone = np.concatenate([model.hidden_states(torch.as_tensor(s)[None])[:, 0].numpy() for s in sequences], axis=1)
        assert batched.shape == alone.shape and np.allclose(batched, alone, atol=1e-5)
