"""What Part 4.1's playground worlds share (Depo, Brevo, Mano; SPEC 7.3 and 11.1): the size distribution of
training instances, multi-token words, and the two ways of scoring answers, greedy exact match and teacher
forcing, with a small table helper for "accuracy by k / n / length".

- `size_probabilities` / `training_size`: a training instance has n in {low..N} with P(n) proportional to
  1 / (n + sqrt(N)), so small instances are more frequent (the released code's choice; SPEC 7.3). Test
  instances take n = N, which is the caller's business.
- `words`: `count` distinct words of ℓ ~ U{min_len..max_len} symbols each; the first ℓ-1 symbols are drawn
  from 1..vocab, the last from vocab+1..2*vocab, so a word's end is visible in its last symbol (SPEC
  11.1.1). Duplicates are rejected and redrawn, as the released sampler does: when short words are scarce
  (Depo1: 50 one-symbol words) the lengths of the words kept lean long, which is what makes Depo1's test
  instances ~1,460 tokens rather than 1,125 (tests/test_playground.py). Words are drawn in vectorised
  batches; the result is the first `count` distinct words of an i.i.d. stream, in the order drawn, exactly
  the released sampler's law. Symbols are plain integers, which each world maps to its vocabulary strings.
- `greedy_answers`: the greedy continuation of every prompt (`physlm.sampling.generate`, temperature 0), cut
  as soon as a caller's `stop` rule says the answer is complete (Depo: at the first word-end symbol).
- `target_hits` / `teacher_forced`: one forward pass per sequence; at each target position t, whether the
  argmax of the logits at t-1 (the model given the true prefix) is the token at t.
- `accuracy_table`: rows of (group value, correct, total) summed per group value.

numpy and the standard library only at import; torch is imported inside the scoring functions, so a world's
generator can use the samplers without the engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np


def size_probabilities(N: int, low: int = 3) -> np.ndarray:
    """P(n) for n = low..N (index 0 is n = low): proportional to 1 / (n + sqrt(N))."""
    if not 1 <= low <= N:
        raise ValueError(f"need 1 <= low <= N, got low {low}, N {N}")
    weights = 1.0 / (np.arange(low, N + 1, dtype=np.float64) + math.sqrt(N))
    return weights / weights.sum()


def training_size(rng: np.random.Generator, N: int, low: int = 3) -> int:
    """One training instance's size n, drawn from `size_probabilities(N, low)`."""
    return low + int(rng.choice(N - low + 1, p=size_probabilities(N, low)))


def word_count(vocab: int, min_len: int, max_len: int) -> int:
    """How many distinct words of min_len..max_len symbols exist (vocab ** ℓ of each length ℓ)."""
    return sum(vocab**length for length in range(min_len, max_len + 1))


def words(rng: np.random.Generator, count: int, vocab: int, min_len: int, max_len: int) -> list[tuple[int, ...]]:
    """`count` distinct words, in the order drawn (see the module docstring); ValueError naming the numbers when
    fewer than `count` distinct words exist."""
    if vocab < 1 or not 1 <= min_len <= max_len:
        raise ValueError(f"need vocab >= 1 and 1 <= min_len <= max_len, got vocab {vocab}, lengths {min_len}..{max_len}")
    available = word_count(vocab, min_len, max_len)
    if count > available:
        raise ValueError(f"{count} distinct words asked for, but only {available} exist with vocab {vocab} and "
                         f"lengths {min_len}..{max_len}")
    found: dict[tuple[int, ...], None] = {}  # insertion-ordered set
    while len(found) < count:  # the first `count` distinct words of an i.i.d. stream, drawn in batches
        batch = max(count - len(found), 8)
        lengths = rng.integers(min_len, max_len + 1, size=batch)
        symbols = rng.integers(1, vocab + 1, size=(batch, max_len))
        symbols[np.arange(batch), lengths - 1] += vocab  # the last symbol marks the word's end
        for row, length in zip(symbols.tolist(), lengths.tolist()):
            found.setdefault(tuple(row[:length]), None)
            if len(found) == count:
                break
    return list(found)


def greedy_answers(model: Any, prompts: list[list[int]], max_new: int, stop: Callable[[list[int]], bool] | None,
                   batch_size: int, device: Any = None) -> list[list[int]]:
    """The greedy continuation of each prompt, at most `max_new` tokens: cut after the first prefix for which
    `stop(prefix)` is true (None: cut after the first <eos>, included, as `physlm.sampling.generate` does).
    A continuation that never satisfies `stop` comes back whole (max_new tokens, or up to <eos>): malformed.
    The model must already be on `device` (generation runs where the model is; the argument is there so
    the two scorers take the same arguments)."""
    from physlm.sampling import generate
    from physlm.tokenize import Vocab

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
    import torch

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


def accuracy_table(rows: Iterable[Mapping[str, Any]], by: str) -> list[dict[str, Any]]:
    """Accuracy per value of `by`: each row holds `by`, `correct` (a bool or a count) and optionally `total`
    (default 1: one exact-match answer); returns [{by, "correct", "total", "accuracy"}] sorted by value."""
    sums: dict[Any, list[int]] = {}
    for row in rows:
        acc = sums.setdefault(row[by], [0, 0])
        acc[0] += int(row["correct"])
        acc[1] += int(row.get("total", 1))
    return [{by: key, "correct": c, "total": t, "accuracy": c / t if t else float("nan")}
            for key, (c, t) in sorted(sums.items())]
