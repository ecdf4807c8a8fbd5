"""Part 1's parse-tree probes on frozen hidden states (where does the parse tree live?).

For every layer (0 = embeddings, l = after block l) and every non-terminal level of the grammar, probes read
hidden states and predict the level's NT-ancestor `s_l(i)` and NT-boundary `b_l(i)` at token i (SPEC 1.1).
"ancestor@end" scores the ancestor prediction only where `b_l(i) = 1` (the NT-end variant); the probes are
fitted on all positions. The same probes run on a randomly initialised model of the same shape as a control.
Two probes, both linear in the hidden states and both only looking left:

- "linear" (`probe_layers`, the cheap baseline): per-position multinomial logistic regressions on the
  state at i alone, fitted full-batch with Adam on standardised features; all heads of one layer share one
  linear map (their parameters are disjoint, so this equals fitting them separately). `tests/test_probe.py`
  checks the fit against scikit-learn's LogisticRegression on the same features.
- "multihead" (`probe_layers_multihead`, SPEC 1.4's probe, our reading of the paper): for position i,
  z_i = concat_r sum_{k<=i} w_{r,i,k} U_r h_k with w_{r,i,.} = softmax over k <= i of <P_{r,i}, P_{r,k}>,
  where P_r are trainable position embeddings (`pos_dim`), U_r trainable width -> `rank` maps, r over
  `heads`; each target's logits are A_t z_i + c_t. The mixing weights depend on positions only, so the
  logits are affine in the states (linear after the standardisation and the bias) and position i never
  sees k > i. One probe per layer is fitted on all targets jointly: z (P, U) is shared by the targets, each
  has its own output map A_t, c_t (with 16 heads x rank 16 = 256 > width, z has room for every target; a
  per-target z would cost one T x T mixing per target). Tests check exact linearity, left-looking, and
  that it learns a label that lives two positions back, which the per-position probe cannot.

The encoder-only (MLM) control is probed the same way: the probes still look only left, but the encoder's
own states at k <= i were computed from the whole sentence, so its probes see right context through them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from physlm import probing


@dataclass(frozen=True)
class Target:
    """One classification target over all probed positions."""

    name: str                 # e.g. "ancestor" / "boundary"
    level: int                # grammar level (1 = just below the root)
    labels: np.ndarray        # [positions] int class index
    classes: int
    mask: np.ndarray | None = None  # positions scored for the "@end" variant (None = all)


def fit_linear_probes(
    x_train: np.ndarray,
    y_train: Sequence[np.ndarray],
    classes: Sequence[int],
    *,
    steps: int,
    lr: float,
    weight_decay: float,
    seed: int,
    desc: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    """Fit one softmax head per target on shared features; returns (W, b, mean, std) for `predict`. `desc`
    names a progress bar (None: none)."""
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x = torch.as_tensor((x_train - mean) / std, dtype=torch.float32)
    ys = [torch.as_tensor(y, dtype=torch.long) for y in y_train]
    gen = torch.Generator().manual_seed(seed)
    # All heads share one matrix; its columns are padded to a multiple of 16 with zeros that no loss reads
    # (their gradient is 0, so they stay 0): skinny matmuls like [N, 128] @ [128, 11] run 3-6x slower on CPU.
    total = sum(classes)
    weight = torch.cat([torch.randn(x.shape[1], total, generator=gen) * 0.01, torch.zeros(x.shape[1], -total % 16)], 1)
    weight.requires_grad_()
    bias = torch.zeros(total + (-total % 16), requires_grad=True)
    splits = np.cumsum([0, *classes])

    def loss(_: int) -> Tensor:
        logits = x @ weight + bias
        value = sum(F.cross_entropy(logits[:, a:b], y) for a, b, y in zip(splits[:-1], splits[1:], ys))
        return value + weight_decay * weight.pow(2).sum()

    probing.fit([weight, bias], range(steps), loss, lr=lr, decoupled=False, desc=desc)  # full batch: every step the same rows
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
    desc: str | None = None,
) -> list[dict]:
    """Fit and score every target at every layer. Rows: layer, target, level, accuracy, majority, n. `desc`
    names a progress bar per layer's fit (None: none)."""
    rows: list[dict] = []
    classes = [t.classes for t in targets]
    test_mask = ~train_mask
    for layer in range(states.shape[0]):
        x = states[layer]
        params = fit_linear_probes(x[train_mask], [t.labels[train_mask] for t in targets], classes, steps=steps, lr=lr,
                                   weight_decay=weight_decay, seed=seed + layer, desc=_layer_desc(desc, layer))
        predictions = predict(params, x[test_mask], classes)
        for target, pred in zip(targets, predictions):
            rows += _score(layer, target, pred, test_mask, "linear")
    return rows


class MultiHeadProbe(nn.Module):
    """The multi-head probe (module docstring) on standardised states h [B, T, width] of whole sentences,
    position 0 = each sentence's first probed token, right-padded to T <= max_len. Returns logits
    [B, T, sum(classes)]; `split` cuts them per target. Position i's logits depend on h[:, :i+1] only, so
    padding after a sentence never reaches it. Deterministic from `seed`."""

    def __init__(self, width: int, classes: Sequence[int], max_len: int, *, heads: int = 16, rank: int = 16,
                 pos_dim: int = 8, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.classes, self.heads, self.rank = tuple(int(c) for c in classes), heads, rank
        # scale pos_dim^-1/4: <P_i, P_k> has unit variance, so the initial mixing is soft (mildly favouring k = i)
        self.pos = nn.Parameter(torch.randn(heads, max_len, pos_dim, generator=gen) * pos_dim**-0.25)
        self.down = nn.Parameter(torch.randn(width, heads * rank, generator=gen) * width**-0.5)  # the U_r, side by side
        self.out = nn.Parameter(torch.randn(heads * rank, sum(self.classes), generator=gen) * 0.01)  # the A_t, side by side
        self.bias = nn.Parameter(torch.zeros(sum(self.classes)))

    def mixing(self, length: int) -> Tensor:
        """w [heads, length, length]: row i is the softmax over k <= i of <P_{r,i}, P_{r,k}>; 0 for k > i."""
        if length > self.pos.size(1):
            raise ValueError(f"sentence of {length} positions, the probe has position embeddings for {self.pos.size(1)}")
        p = self.pos[:, :length]
        left = torch.ones(length, length, dtype=torch.bool, device=p.device).tril()
        return (p @ p.transpose(1, 2)).masked_fill(~left, float("-inf")).softmax(-1)

    def forward(self, h: Tensor) -> Tensor:
        B, T, _ = h.shape
        u = (h @ self.down).view(B, T, self.heads, self.rank)  # U_r h_k
        z = torch.einsum("rik,bkrs->birs", self.mixing(T), u)  # sum_{k<=i} w_{r,i,k} U_r h_k
        return z.reshape(B, T, self.heads * self.rank) @ self.out + self.bias

    def split(self, logits: Tensor) -> list[Tensor]:
        return list(logits.split(self.classes, dim=-1))


@dataclass
class FittedMultiHead:
    probe: MultiHeadProbe
    mean: np.ndarray  # standardisation of the states (from the fitting positions)
    std: np.ndarray


def fit_multihead_probe(
    sentences: Sequence[np.ndarray],
    labels: Sequence[Sequence[np.ndarray]],
    classes: Sequence[int],
    *,
    steps: int,
    lr: float,
    weight_decay: float,
    seed: int,
    heads: int = 16,
    rank: int = 16,
    pos_dim: int = 8,
    batch_size: int | None = None,
    max_len: int | None = None,
    device: str | torch.device = "cpu",
    desc: str | None = None,
) -> FittedMultiHead:
    """Fit one `MultiHeadProbe` on all targets jointly (sum of the targets' mean cross-entropies over real
    positions, plus weight_decay * squared norm of U and A; none on P and the biases) with Adam.

    sentences: per sentence its states [T_j, width]; labels[t][j]: target t's classes [T_j] on sentence j.
    batch_size: sentences per step, walking a seeded permutation per epoch; None = full batch.
    max_len: position embeddings to make (default: the longest sentence here; give the longest sentence
    to be predicted too). Deterministic from `seed` (bit-for-bit on CPU). `desc` names a progress bar (None: none)."""
    flat = np.concatenate(sentences)
    mean, std = flat.mean(0), flat.std(0) + 1e-6
    lengths = np.array([len(s) for s in sentences])
    x = _pad_states(sentences, mean, std, device)
    y = torch.stack([_pad_labels(per_sentence, x.shape[1]) for per_sentence in labels]).to(device)  # [targets, N, T]
    probe = MultiHeadProbe(flat.shape[1], classes, max_len or int(lengths.max()), heads=heads, rank=rank,
                           pos_dim=pos_dim, seed=seed).to(device)
    n = len(sentences)
    size = n if batch_size is None else min(batch_size, n)

    def loss(step: int) -> Tensor:
        rows = np.arange(n) if size == n else _stream_rows(seed, step, size, n)
        longest = int(lengths[rows].max())
        index = torch.as_tensor(rows, device=x.device)
        logits = probe.split(probe(x[index, :longest]))
        value = sum(F.cross_entropy(lt.flatten(0, 1), yt[index, :longest].flatten(), ignore_index=-1)
                    for lt, yt in zip(logits, y))
        return value + weight_decay * (probe.down.pow(2).sum() + probe.out.pow(2).sum())

    probing.fit(probe.parameters(), range(steps), loss, lr=lr, decoupled=False, desc=desc)
    return FittedMultiHead(probe.eval(), mean, std)


@torch.no_grad()
def predict_multihead(fitted: FittedMultiHead, sentences: Sequence[np.ndarray], *, batch_size: int = 64) -> list[np.ndarray]:
    """Per target, the predicted classes at every position of the sentences, concatenated in order."""
    probe = fitted.probe
    device = probe.pos.device
    preds: list[list[np.ndarray]] = [[] for _ in probe.classes]
    for start in range(0, len(sentences), batch_size):
        batch = sentences[start : start + batch_size]
        logits = probe.split(probe(_pad_states(batch, fitted.mean, fitted.std, device)))
        for t, lt in enumerate(logits):
            best = lt.argmax(-1).cpu().numpy()
            preds[t] += [best[row, : len(s)] for row, s in enumerate(batch)]
    return [np.concatenate(p) for p in preds]


def probe_layers_multihead(
    states: np.ndarray,
    targets: Sequence[Target],
    train_mask: np.ndarray,
    lengths: Sequence[int],
    *,
    steps: int,
    lr: float,
    weight_decay: float,
    seed: int,
    heads: int = 16,
    rank: int = 16,
    pos_dim: int = 8,
    batch_size: int | None = None,
    layers: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
    desc: str | None = None,
) -> list[dict]:
    """`probe_layers` with the multi-head probe: the same inputs (concatenated positions [L, positions, W],
    targets, train_mask) plus the sentence lengths that cut the positions into sentences, in order; every
    sentence is wholly fitting or wholly held out. Fits one probe per layer in `layers` (default: all) on
    the fitting sentences, seed + layer, and scores the held-out ones. Rows as `probe_layers`, probe="multihead";
    `desc` names a progress bar per layer's fit (None: none)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.sum() != states.shape[1] or (lengths <= 0).any():
        raise ValueError(f"sentence lengths sum to {lengths.sum()}, the states have {states.shape[1]} positions")
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    fit = np.asarray(train_mask, dtype=bool)[starts]
    if not np.array_equal(np.repeat(fit, lengths), train_mask):
        raise ValueError("train_mask must be constant within each sentence")
    if fit.all() or not fit.any():
        raise ValueError("need both fitting and held-out sentences")
    test_mask = ~np.asarray(train_mask, dtype=bool)
    cuts = np.cumsum(lengths)[:-1]
    classes = [t.classes for t in targets]
    labels = [np.split(t.labels, cuts) for t in targets]
    rows: list[dict] = []
    for layer in range(states.shape[0]) if layers is None else layers:
        per_sentence = np.split(states[layer], cuts)
        fitted = fit_multihead_probe(
            [s for s, f in zip(per_sentence, fit) if f], [[y for y, f in zip(per, fit) if f] for per in labels],
            classes, steps=steps, lr=lr, weight_decay=weight_decay, seed=seed + layer, heads=heads, rank=rank,
            pos_dim=pos_dim, batch_size=batch_size, max_len=int(lengths.max()), device=device, desc=_layer_desc(desc, layer),
        )
        predictions = predict_multihead(fitted, [s for s, f in zip(per_sentence, fit) if not f])
        for target, pred in zip(targets, predictions):
            rows += _score(layer, target, pred, test_mask, "multihead")
    return rows


def _layer_desc(desc: str | None, layer: int) -> str | None:
    """The progress bar's name for one layer's fit (None: no bar)."""
    return None if desc is None else f"{desc} layer {layer}"


def _stream_rows(seed: int, step: int, size: int, n: int) -> np.ndarray:
    """Mini-batch `step`: stream positions [step * size, (step + 1) * size) of a walk over a fresh seeded
    permutation of the n sentences per epoch."""
    positions = np.arange(step * size, (step + 1) * size)
    epochs = {int(e): np.random.default_rng([seed, int(e)]).permutation(n) for e in np.unique(positions // n)}
    return np.array([epochs[int(p // n)][p % n] for p in positions])


def _pad_states(sentences: Sequence[np.ndarray], mean: np.ndarray, std: np.ndarray, device: str | torch.device) -> Tensor:
    """Standardised states, right-padded with zeros: [N, longest, width] float32."""
    out = torch.zeros(len(sentences), max(len(s) for s in sentences), sentences[0].shape[1])
    for row, s in enumerate(sentences):
        out[row, : len(s)] = torch.as_tensor((s - mean) / std, dtype=torch.float32)
    return out.to(device)


def _pad_labels(labels: Sequence[np.ndarray], length: int) -> Tensor:
    """Classes right-padded with -1 (ignored by the loss): [N, length] int64."""
    out = torch.full((len(labels), length), -1, dtype=torch.long)
    for row, y in enumerate(labels):
        out[row, : len(y)] = torch.as_tensor(np.asarray(y, dtype=np.int64))
    return out


def _score(layer: int, target: Target, pred: np.ndarray, test_mask: np.ndarray, probe: str) -> list[dict]:
    truth = target.labels[test_mask]
    rows = [_row(layer, target.name, target.level, pred, truth, probe)]
    if target.mask is not None:
        at_end = target.mask[test_mask]
        rows.append(_row(layer, f"{target.name}@end", target.level, pred[at_end], truth[at_end], probe))
    return rows


def _row(layer: int, name: str, level: int, pred: np.ndarray, truth: np.ndarray, probe: str) -> dict:
    majority = np.bincount(truth).max() / len(truth) if len(truth) else float("nan")
    accuracy = float((pred == truth).mean()) if len(truth) else float("nan")
    return {"layer": layer, "target": name, "level": level, "accuracy": accuracy, "majority": float(majority),
            "n": int(len(truth)), "probe": probe}


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


def summarize(rows: Sequence[dict], last_layer: int, probe: str | None = None) -> dict[str, float]:
    """Mean accuracy over levels, per target, at the last layer (of the rows of `probe` only, if given)."""
    if probe is not None:
        rows = [r for r in rows if r.get("probe") == probe]
    out: dict[str, float] = {}
    for name in sorted({r["target"] for r in rows}):
        accs = [r["accuracy"] for r in rows if r["layer"] == last_layer and r["target"] == name]
        out[name.replace("@", "_at_")] = float(np.mean(accs))
    return out
