"""The linear probes agree with scikit-learn's logistic regression on the same features (the oracle)."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from physlm.probe import Target, cfg_targets, fit_linear_probes, predict, probe_layers


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
