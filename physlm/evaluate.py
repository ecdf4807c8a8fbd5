"""Generation and scoring, dispatched to the world's judge.

Grammar world (SPEC 1.3): `cut0` samples whole sentences from `<bos>` alone; `cut<k>` (k = the `prefix`
param, 50 in the paper) continues the first k tokens of held-out test sentences. Sampling is at the given
temperature (1 in the paper) until `<eos>`; a sample counts as correct only if the full string is in the
language, decided by the exact membership DP (`physlm.worlds.cfg.Judge`). No partial credit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from physlm.sampling import generate
from physlm.tokenize import Vocab, cfg_decode, cfg_encode


@dataclass(frozen=True)
class Scored:
    accuracy: float
    n: int
    mean_length: float
    distinct: float        # share of distinct strings among the samples
    seen_in_train: float   # share of correct samples that are verbatim training sentences


def score_samples(samples: Sequence[list[int] | None], judge: Callable[[Sequence[int]], bool], train_set: set[tuple[int, ...]]) -> Scored:
    """Judge decoded samples (None = malformed: special token inside, or no <eos>)."""
    ok = [s is not None and len(s) > 0 and judge(s) for s in samples]
    good = [tuple(s) for s, k in zip(samples, ok) if k]
    lengths = [len(s) for s in samples if s is not None]
    return Scored(
        accuracy=float(np.mean(ok)) if ok else float("nan"),
        n=len(samples),
        mean_length=float(np.mean(lengths)) if lengths else 0.0,
        distinct=len({tuple(s) for s in samples if s is not None}) / max(len(samples), 1),
        seen_in_train=sum(g in train_set for g in good) / max(len(good), 1),
    )


def _finished(continuation: list[int]) -> list[int] | None:
    """Terminals of a continuation that ended with <eos>; None otherwise."""
    if not continuation or continuation[-1] != Vocab.eos_id:
        return None
    return cfg_decode(continuation)


def sample_cut0(model: torch.nn.Module, *, samples: int, context: int, temperature: float, seed: int, batch_size: int) -> list[list[int] | None]:
    prompts = [[Vocab.bos_id]] * samples
    outs = generate(model, prompts, max_new_tokens=context - 1, temperature=temperature, eos_id=Vocab.eos_id, seed=seed, batch_size=batch_size)
    return [_finished(o) for o in outs]


def sample_prefix(model: torch.nn.Module, sentences: Sequence[Sequence[int]], *, prefix: int, context: int, temperature: float,
                  seed: int, batch_size: int) -> list[list[int] | None]:
    """Continue the first `prefix` terminals of each sentence; returns the full strings (prefix + continuation)."""
    heads = [list(s[:prefix]) for s in sentences]
    prompts = [[Vocab.bos_id, *cfg_encode(np.asarray(h)).tolist()] for h in heads]
    outs = generate(model, prompts, max_new_tokens=context - prefix - 1, temperature=temperature, eos_id=Vocab.eos_id, seed=seed,
                    batch_size=batch_size)
    full: list[list[int] | None] = []
    for head, out in zip(heads, outs):
        tail = _finished(out)
        full.append(None if tail is None else head + tail)
    return full
