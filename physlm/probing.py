"""The shared probe toolkit: what every world's probes are built from.

- `hidden_states`: a frozen model's residual stream at every position of many sequences (Part 1's linear and
  multi-head probes read it); `states_at`: only at chosen positions (the playground worlds read it at `<ans>`).
- `linear_probe`, `majority_accuracy`: a linear classifier's held-out accuracy on such states, and its baseline.
- `frozen_with_update`: a frozen deep copy of a GPT whose token embedding carries a trainable low-rank update
  (`physlm.lora.LowRankEmbedding`, zero at the start, so the probe starts as the model): Part 2.1's V-probes
  and Part 3.1's P- and Q-probes.
- `fit`: the one optimisation loop every probe trains with (Adam, or AdamW with optional linear decay to 0,
  over a sequence of batches, a progress bar when asked), returning the per-step losses.
The probes themselves live with their worlds (`physlm/worlds/cfg/probes.py`, `igsm/vprobe.py`,
`bio/pqprobe.py`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from physlm.lora import LowRankEmbedding
from physlm.model import GPT


@torch.no_grad()
def hidden_states(model: torch.nn.Module, sequences: Sequence[np.ndarray], *, batch_size: int = 32, pad_id: int = 1,
                  desc: str | None = None) -> np.ndarray:
    """Hidden states at every position of every sequence: [layers, total_positions, width] float32.

    Sequences are right-padded within a batch; causal attention keeps padding from reaching real tokens.
    A non-causal model (the MLM encoder, `cfg.causal = False`) would attend to the padding, so its batches
    only group sequences of equal length (no padding at all). `desc` names a progress bar (None: none).
    """
    device = next(model.parameters()).device
    causal = getattr(getattr(model, "cfg", None), "causal", True)
    order = list(range(len(sequences)))
    if causal:
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    else:
        batches = []
        for length in sorted({len(s) for s in sequences}):
            same = [i for i in order if len(sequences[i]) == length]
            batches += [same[start : start + batch_size] for start in range(0, len(same), batch_size)]
    chunks: list[np.ndarray | None] = [None] * len(sequences)
    for batch in tqdm(batches, desc=desc, unit="batch", mininterval=1.0, leave=False, disable=desc is None):
        longest = max(len(sequences[i]) for i in batch)
        idx = torch.full((len(batch), longest), pad_id, dtype=torch.long)
        for row, i in enumerate(batch):
            idx[row, : len(sequences[i])] = torch.as_tensor(np.asarray(sequences[i], dtype=np.int64))
        states = model.hidden_states(idx.to(device)).float().cpu().numpy()  # [L, B, T, W]
        for row, i in enumerate(batch):
            chunks[i] = states[:, row, : len(sequences[i])]
    return np.concatenate(chunks, axis=1)


@torch.no_grad()
def states_at(model: torch.nn.Module, sequences: Sequence[Sequence[int]], positions: Sequence[Sequence[int]], *,
              batch_size: int = 32) -> np.ndarray:
    """[layers, rows, width] float32: the residual stream (after the embedding, then after every block) at the
    positions `positions[i]` of each causal sequence i, rows in that order. Batches are right-padded: causal
    attention keeps the padding from every real token."""
    if len(positions) != len(sequences):
        raise ValueError(f"{len(sequences)} sequences but {len(positions)} position lists")
    device = next(model.parameters()).device
    out = []
    for lo in range(0, len(sequences), batch_size):
        rows, where = sequences[lo : lo + batch_size], positions[lo : lo + batch_size]
        idx = torch.zeros(len(rows), max(len(s) for s in rows), dtype=torch.long)
        for r, seq in enumerate(rows):
            idx[r, : len(seq)] = torch.as_tensor(np.asarray(seq, dtype=np.int64))
        states = model.hidden_states(idx.to(device))  # [L+1, B, T, W]
        batch = torch.as_tensor([r for r, pos in enumerate(where) for _ in pos], dtype=torch.long, device=device)
        column = torch.as_tensor([t for pos in where for t in pos], dtype=torch.long, device=device)
        out.append(states[:, batch, column].float().cpu().numpy())
    return np.concatenate(out, axis=1)


def linear_probe(x: np.ndarray, y: np.ndarray, fit_rows: np.ndarray, classes: int, *, steps: int, lr: float) -> float:
    """Accuracy, on the rows outside `fit_rows` (a bool mask), of a linear map x -> one of `classes` classes fit on
    the `fit_rows`: features standardised by the fit rows' mean and std, weights starting at zero, `steps` of
    full-batch Adam on cross-entropy (`fit`), so it needs no seed. On the CPU (states from `states_at`)."""
    x, y = torch.as_tensor(np.asarray(x, dtype=np.float32)), torch.as_tensor(np.asarray(y, dtype=np.int64))
    on = torch.as_tensor(np.asarray(fit_rows, dtype=bool))
    if not on.any() or on.all():
        raise ValueError("linear_probe needs rows to fit and rows to score")
    mean, std = x[on].mean(0), x[on].std(0, correction=0) + 1e-6
    x = (x - mean) / std
    head = nn.Linear(x.shape[1], classes)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    batch = (x[on], y[on])
    with torch.enable_grad():
        fit(head.parameters(), (batch for _ in range(steps)), lambda b: nn.functional.cross_entropy(head(b[0]), b[1]),
            lr=lr, decoupled=False)
    with torch.no_grad():
        return float((head(x[~on]).argmax(-1) == y[~on]).float().mean())


def majority_accuracy(y: np.ndarray, fit_rows: np.ndarray) -> float:
    """The baseline of `linear_probe`: accuracy on the rows outside `fit_rows` of always answering the fit rows'
    most common class."""
    y, on = np.asarray(y), np.asarray(fit_rows, dtype=bool)
    values, counts = np.unique(y[on], return_counts=True)
    return float(np.mean(y[~on] == values[np.argmax(counts)]))


def frozen_with_update(model: GPT, rank: int, seed: int) -> GPT:
    """A deep copy of `model` with every weight frozen and its token embedding replaced by
    `LowRankEmbedding.probe` (E + A B, A zero, B ~ N(0, 1/rank) from `seed`): the caller's model is untouched."""
    frozen = copy.deepcopy(model).requires_grad_(False)
    frozen.wte = LowRankEmbedding.probe(frozen.wte, rank, torch.Generator().manual_seed(seed))
    return frozen


def fit(parameters: Iterable[nn.Parameter], batches: Iterable[Any], loss: Callable[[Any], Tensor], *, lr: float,
        weight_decay: float = 0.0, decoupled: bool = True, linear_decay: bool = False, steps: int | None = None,
        desc: str | None = None) -> np.ndarray:
    """Train `parameters` on `loss(batch)` for each batch in turn: zero the gradients, backpropagate the loss
    (its sum, when it is a vector of per-task losses), step. The optimizer is AdamW with `weight_decay`
    (`decoupled`), else Adam with none (the loss carries any penalty); `linear_decay` takes the learning rate
    from `lr` to 0 over `steps` updates. `desc` names a progress bar (None: none). Returns the losses, one row
    per step."""
    params = list(parameters)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay) if decoupled else torch.optim.Adam(params, lr=lr)
    if linear_decay and not steps:
        raise ValueError("linear_decay needs the number of steps")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 - step / steps) if linear_decay else None
    losses = []
    for batch in tqdm(batches, total=steps, desc=desc, mininterval=1.0, leave=False, disable=desc is None):
        value = loss(batch)
        opt.zero_grad(set_to_none=True)
        value.sum().backward()
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(value.detach())
    return torch.stack(losses).cpu().numpy() if losses else np.zeros(0, dtype=np.float32)
