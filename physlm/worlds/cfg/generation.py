"""Generation from a grammar-world model and its scoring by the exact judge (SPEC 1.3).

`cut0` samples whole sentences from `<bos>` alone; `cut<k>` (k = the `prefix` param, 50 in the paper)
continues the first k tokens of held-out test sentences. Sampling is at the given temperature (1 in the
paper) until `<eos>`; a sample counts as correct only if the full string is in the language, decided by the exact membership DP (`physlm.worlds.cfg.grammar.Judge`). No partial credit.

Held out: with `evaluate.cfg.unseen_prompts` the cut<k> prompts (and the KL and corrupted-prompt sentences) are
test sentences that are not training sentences (`unseen`); a small grammar repeats itself, so a test
sentence can also be a training one. The overlap figures beside the scores use `share_in`.

Also: the KL between the grammar's exact next-token distribution (`physlm.worlds.cfg.dist`) and the model's
along held-out sentences (SPEC 1.3), and the collision-based diversity of correct samples against the
grammar's own samples (`physlm.worlds.cfg.diversity`). `tests/test_evaluate.py` checks the column alignment of the two
distributions and that an exact model scores zero KL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from physlm.sampling import generate
from physlm.tokenize import Vocab
from physlm.worlds.cfg.tokenize import cfg_decode, cfg_encode


@dataclass(frozen=True)
class Scored:
    accuracy: float
    n: int
    mean_length: float
    distinct: float        # share of distinct strings among the samples
    seen_in_train: float   # share of correct samples that are verbatim training sentences


def accepted(samples: Sequence[list[int] | None], judge: Callable[[Sequence[int]], bool]) -> list[bool]:
    """Each decoded sample's verdict: in the language (None = malformed: special token inside, or no <eos>; an
    empty string is never a sentence)."""
    return [s is not None and len(s) > 0 and judge(s) for s in samples]


def score_samples(samples: Sequence[list[int] | None], judge: Callable[[Sequence[int]], bool], train_set: set[tuple[int, ...]]) -> Scored:
    """Judge decoded samples (None = malformed: special token inside, or no <eos>)."""
    return score_judged(samples, accepted(samples, judge), train_set)


def score_judged(samples: Sequence[list[int] | None], ok: Sequence[bool], train_set: set[tuple[int, ...]]) -> Scored:
    """`score_samples` of samples already judged (`ok`: `accepted`)."""
    good = [tuple(s) for s, k in zip(samples, ok) if k]
    lengths = [len(s) for s in samples if s is not None]
    return Scored(
        accuracy=float(np.mean(ok)) if ok else float("nan"),
        n=len(samples),
        mean_length=float(np.mean(lengths)) if lengths else 0.0,
        distinct=len({tuple(s) for s in samples if s is not None}) / max(len(samples), 1),
        seen_in_train=sum(g in train_set for g in good) / max(len(good), 1),
    )


def unseen(sentences: Sequence[Sequence[int]], train_set: set[tuple[int, ...]]) -> list[Sequence[int]]:
    """The sentences that are not training sentences, in order."""
    return [t for t in sentences if tuple(t) not in train_set]


def share_in(sentences: Sequence[Sequence[int]], train_set: set[tuple[int, ...]]) -> float | None:
    """The share of `sentences` that are in `train_set` (None for no sentences)."""
    return float(np.mean([tuple(t) in train_set for t in sentences])) if sentences else None


def finished(continuation: list[int]) -> list[int] | None:
    """Terminals of a continuation that ended with <eos>; None otherwise."""
    if not continuation or continuation[-1] != Vocab.eos_id:
        return None
    return cfg_decode(continuation)


def sample_cut0(model: torch.nn.Module, *, samples: int, context: int, temperature: float, seed: int, batch_size: int,
                desc: str | None = None) -> list[list[int] | None]:
    """`samples` strings sampled from <bos> alone (None = malformed, see `finished`); `desc` names a progress bar."""
    prompts = [[Vocab.bos_id]] * samples
    outs = generate(model, prompts, max_new_tokens=context - 1, temperature=temperature, eos_id=Vocab.eos_id, seed=seed,
                    batch_size=batch_size, desc=desc)
    return [finished(o) for o in outs]


def sample_prefix(model: torch.nn.Module, sentences: Sequence[Sequence[int]], *, prefix: int, context: int, temperature: float,
                  seed: int, batch_size: int, desc: str | None = None) -> list[list[int] | None]:
    """Continue the first `prefix` terminals of each sentence; returns the full strings (prefix + continuation).
    `desc` names a progress bar (None: none)."""
    heads = [list(s[:prefix]) for s in sentences]
    prompts = [[Vocab.bos_id, *cfg_encode(np.asarray(h)).tolist()] for h in heads]
    outs = generate(model, prompts, max_new_tokens=context - prefix - 1, temperature=temperature, eos_id=Vocab.eos_id, seed=seed,
                    batch_size=batch_size, desc=desc)
    full: list[list[int] | None] = []
    for head, out in zip(heads, outs):
        tail = finished(out)
        full.append(None if tail is None else head + tail)
    return full


@torch.no_grad()
def model_next_token(model: torch.nn.Module, sentences: Sequence[Sequence[int]], num_terminals: int, batch_size: int) -> list[np.ndarray]:
    """The model's next-symbol distribution after each prefix of each sentence: [len+1, V+1] per sentence.

    Columns are ordered as in `cfg_dist.next_token_distributions` (EOS, then terminals 1..V), i.e. token ids
    1..V+1; the probability the model puts on `<bos>` is dropped and the rest renormalised.
    """
    device = next(model.parameters()).device
    out: list[np.ndarray] = []
    for start in range(0, len(sentences), batch_size):
        batch = sentences[start : start + batch_size]
        longest = max(len(s) for s in batch) + 1
        idx = torch.full((len(batch), longest), Vocab.eos_id, dtype=torch.long)
        for row, sent in enumerate(batch):
            idx[row, : len(sent) + 1] = torch.as_tensor([Vocab.bos_id, *cfg_encode(np.asarray(sent)).tolist()])
        probs = torch.softmax(model(idx.to(device))[0].float(), dim=-1)[..., 1 : num_terminals + 2]
        probs = (probs / probs.sum(-1, keepdim=True)).cpu().numpy()
        out += [probs[row, : len(sent) + 1] for row, sent in enumerate(batch)]
    return out


def kl_to_grammar(model: torch.nn.Module, grammar, sentences: Sequence[Sequence[int]], batch_size: int,
                  bags=None, desc: str | None = None) -> dict[str, float]:
    """SPEC 1.3's KL between the grammar's exact next-symbol distribution and the model's, along held-out
    sentences: mean over positions per sentence, then mean (and max) over sentences. With `bags`
    (`physlm.worlds.cfg.implicit.Bags`) the grammar is implicit and the symbols are the bags' tokens. `desc`
    names a progress bar over the sentences' exact distributions (None: none)."""
    from physlm.worlds.cfg.dist import kl_per_position, next_token_distributions

    emissions, vocab = (None, len(grammar.terminals)) if bags is None else (bags.bags, bags.vocab_size)
    pairs = zip(sentences, model_next_token(model, sentences, vocab, batch_size))
    kls = [float(kl_per_position(next_token_distributions(grammar, s, emissions=emissions), p).mean())
           for s, p in tqdm(pairs, total=len(sentences), desc=desc, unit="seq", mininterval=1.0, leave=False, disable=desc is None)]
    return {"mean": float(np.mean(kls)), "max": float(np.max(kls)), "sentences": len(kls)}


def diversity(samples: Sequence[list[int] | None], reference: Sequence[Sequence[int]]) -> dict:
    """Collision-based diversity of the correct generated strings against as many grammar samples."""
    from physlm.worlds.cfg.diversity import compare

    good = [tuple(s) for s in samples if s is not None]
    ref = [tuple(s) for s in reference[: max(len(good), 2)]]
    if len(good) < 2:
        return {}
    found = compare(good, ref)
    keep = ("n", "collisions", "renyi2_nats", "support", "is_lower_bound")
    return {"model": {k: found["model"][k] for k in keep}, "grammar": {k: found["reference"][k] for k in keep},
            "chao_shen_nats": found["chao_shen_nats"]}
