"""Scoring a model's answers in the playground worlds (Depo, Brevo, Mano): greedy exact match and teacher
forcing, one forward pass per sequence. The torch-free pieces they share (sizes, words, `accuracy_table`) are
`physlm/playground.py`, which generators may import; this module is for the probe and evaluate steps.

- `greedy_answers`: the greedy continuation of every prompt (`physlm.sampling.generate`, temperature 0), cut
  as soon as a caller's `stop` rule says the answer is complete (Depo: at the first word-end symbol).
- `target_hits` / `teacher_forced`: at each target position t of a sequence, whether the argmax of the logits
  at t-1 (the model given the true prefix) is the token at t; `teacher_forced` counts them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from physlm.sampling import generate
from physlm.tokenize import Vocab


def greedy_answers(model: Any, prompts: list[list[int]], max_new: int, stop: Callable[[list[int]], bool] | None,
                   batch_size: int, device: Any = None) -> list[list[int]]:
    """The greedy continuation of each prompt, at most `max_new` tokens: cut after the first prefix for which
    `stop(prefix)` is true (None: cut after the first <eos>, included, as `physlm.sampling.generate` does).
    A continuation that never satisfies `stop` comes back whole (max_new tokens, or up to <eos>): malformed.
    The model must already be on `device` (generation runs where the model is; the argument is there so
    the two scorers take the same arguments)."""
    if not prompts:
        return []
    out = generate(model, prompts, max_new_tokens=max_new, temperature=0.0, eos_id=Vocab.eos_id, seed=0,
                   batch_size=batch_size)
    return [_cut(tokens, stop) for tokens in out] if stop is not None else out


def _cut(tokens: list[int], stop: Callable[[list[int]], bool]) -> list[int]:
    for end in range(1, len(tokens) + 1):
        if stop(tokens[:end]):
            return tokens[:end]
    return tokens


def target_hits(model: Any, sequences: Sequence[Sequence[int]], targets: Sequence[Sequence[int]], batch_size: int,
                device: Any) -> list[np.ndarray]:
    """For each sequence, a bool array over its target positions (in the order given): is the model's argmax
    at position t-1 the token at t? Positions must be in 1..len-1; sequences are right-padded in batches of
    `batch_size` (causal attention: padding never reaches a real token)."""
    if len(sequences) != len(targets):
        raise ValueError(f"{len(sequences)} sequences but {len(targets)} target lists")
    for i, (seq, pos) in enumerate(zip(sequences, targets)):
        if any(not 1 <= t < len(seq) for t in pos):
            raise ValueError(f"sequence {i}: target positions must lie in 1..{len(seq) - 1}, got {list(pos)}")
    context = getattr(getattr(model, "cfg", None), "context", None)
    longest = max((len(s) for s in sequences), default=0)
    if context is not None and longest > context:
        raise ValueError(f"a sequence of {longest} tokens exceeds the model context {context}")
    was_training = model.training
    model.eval()
    hits: list[np.ndarray] = []
    try:
        with torch.no_grad():
            for lo in range(0, len(sequences), batch_size):
                rows = sequences[lo : lo + batch_size]
                width = max(len(s) for s in rows)
                idx = torch.zeros(len(rows), width, dtype=torch.long)
                for r, seq in enumerate(rows):
                    idx[r, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
                logits, _ = model(idx.to(device))
                guess = logits.argmax(-1).cpu().numpy()  # guess[r, t-1] predicts token t
                for r, seq in enumerate(rows):
                    pos = np.asarray(targets[lo + r], dtype=np.int64)
                    hits.append(guess[r, pos - 1] == np.asarray(seq, dtype=np.int64)[pos])
    finally:
        model.train(was_training)
    return hits


def teacher_forced(model: Any, sequences: list[list[int]], targets: list[list[int]], batch_size: int,
                   device: Any) -> list[tuple[int, int]]:
    """Per sequence (correct, total) over its target positions (`target_hits`)."""
    return [(int(h.sum()), int(h.size)) for h in target_hits(model, sequences, targets, batch_size, device)]
