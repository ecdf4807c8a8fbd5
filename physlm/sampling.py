"""Batched sampling from a GPT with a KV cache: greedy (temperature 0) or softmax sampling.

Reproducible by construction: prompts are grouped by length (sorted by length, then input order) into
batches, and batch b draws one uniform noise tensor [B, vocab] per step from a generator seeded with
(seed, b). A token is the Gumbel-max argmax(logits / temperature + gumbel(noise)), an exact sample of
softmax(logits / temperature), so the cached and uncached paths consume identical randomness and give the
same samples (tests/test_sampling.py).

`beam_search` keeps the `beams` continuations of highest total log-probability (no length normalisation)
per prompt, with the KV cache reordered along the surviving beams; a beam that has emitted `eos_id` is
finished and keeps its score. One beam is greedy decoding; with as many beams as there are candidate
sequences it is exact (tests/test_sampling.py checks both against brute force).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from physlm.device import generator
from physlm.model import GPT


@torch.no_grad()
def generate(
    model: GPT,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    temperature: float,
    eos_id: int,
    seed: int,
    batch_size: int = 64,
    use_cache: bool = True,
) -> list[list[int]]:
    """Continuations of each prompt (prompt excluded), cut after the first eos_id (included)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    longest = max((len(p) for p in prompts), default=0)
    if longest + max_new_tokens - 1 > model.cfg.context:
        raise ValueError(
            f"prompt of {longest} tokens + {max_new_tokens} new tokens exceeds the model context {model.cfg.context}"
        )
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    results: list[list[int]] = [[] for _ in prompts]
    try:
        for b, rows in enumerate(_batches(prompts, batch_size)):
            idx = torch.tensor([list(prompts[i]) for i in rows], dtype=torch.long, device=device)
            new = _sample_batch(model, idx, max_new_tokens, temperature, eos_id, generator(device, seed, b), use_cache)
            for i, tokens in zip(rows, new.tolist()):
                results[i] = tokens[: tokens.index(eos_id) + 1] if eos_id in tokens else tokens
    finally:
        model.train(was_training)
    return results


def _batches(prompts: Sequence[Sequence[int]], batch_size: int) -> Iterator[list[int]]:
    """Indices of prompts in batches of equal length, in order of (length, index)."""
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
    for _, group in itertools.groupby(order, key=lambda i: len(prompts[i])):
        rows = list(group)
        yield from (rows[i : i + batch_size] for i in range(0, len(rows), batch_size))


def _sample_batch(
    model: GPT, idx: Tensor, max_new_tokens: int, temperature: float, eos_id: int, gen: torch.Generator, use_cache: bool
) -> Tensor:
    """[B, n <= max_new_tokens] new tokens; stops early once every row has produced eos_id."""
    B, T = idx.shape
    cache = model.new_cache(B, T + max_new_tokens - 1) if use_cache else None
    seq, feed, new = idx, idx, []
    done = torch.zeros(B, dtype=torch.bool, device=idx.device)
    for _ in range(max_new_tokens):
        logits, _ = model(feed, cache=cache)
        token = _pick(logits[:, -1].float(), temperature, gen)
        new.append(token)
        done |= token == eos_id
        if bool(done.all()):
            break
        seq = torch.cat((seq, token[:, None]), dim=1)
        feed = token[:, None] if use_cache else seq
    return torch.stack(new, dim=1) if new else idx.new_empty(B, 0)


def _pick(logits: Tensor, temperature: float, gen: torch.Generator) -> Tensor:
    """Greedy at temperature 0, else Gumbel-max: a sample of softmax(logits / temperature)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    noise = torch.rand(logits.shape, generator=gen, device=logits.device)
    return (logits / temperature - torch.log(-torch.log(noise))).argmax(dim=-1)


@torch.no_grad()
def beam_search(
    model: GPT,
    prompts: Sequence[Sequence[int]],
    *,
    beams: int,
    max_new_tokens: int,
    eos_id: int,
    batch_size: int = 64,
) -> list[list[int]]:
    """The most likely continuation found by beam search for each prompt (prompt excluded, cut after the
    first eos_id). `batch_size` counts sequences (prompts x beams) per forward pass."""
    if beams < 1:
        raise ValueError(f"beams must be >= 1, got {beams}")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    if max((len(p) for p in prompts), default=0) + max_new_tokens - 1 > model.cfg.context:
        raise ValueError(f"prompts + {max_new_tokens} new tokens exceed the model context {model.cfg.context}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    results: list[list[int]] = [[] for _ in prompts]
    try:
        for rows in _batches(prompts, max(1, batch_size // beams)):
            idx = torch.tensor([list(prompts[i]) for i in rows], dtype=torch.long, device=device)
            for i, tokens in zip(rows, _beam_batch(model, idx, beams, max_new_tokens, eos_id).tolist()):
                results[i] = tokens[: tokens.index(eos_id) + 1] if eos_id in tokens else tokens
    finally:
        model.train(was_training)
    return results


def _beam_batch(model: GPT, idx: Tensor, beams: int, max_new_tokens: int, eos_id: int) -> Tensor:
    """[n, steps] best continuation of each of the n equal-length prompts."""
    n, T = idx.shape
    cache = model.new_cache(n, T + max_new_tokens - 1)
    logp = torch.log_softmax(model(idx, cache=cache)[0][:, -1].float(), dim=-1)  # [n, V]
    k = min(beams, logp.size(-1))
    scores, tokens = logp.topk(k, dim=-1)  # [n, k]
    _reorder(cache, torch.arange(n, device=idx.device).repeat_interleave(k))
    seqs = tokens[..., None]  # [n, k, steps]
    finished = tokens == eos_id
    for _ in range(max_new_tokens - 1):
        if bool(finished.all()):
            break
        logp = torch.log_softmax(model(seqs[..., -1].reshape(-1, 1), cache=cache)[0][:, -1].float(), dim=-1)
        logp = logp.view(n, k, -1)
        frozen = torch.full_like(logp[0, 0], float("-inf"))
        frozen[eos_id] = 0.0
        logp = torch.where(finished[..., None], frozen, logp)  # a finished beam only "emits" eos, at no cost
        vocab = logp.size(-1)
        scores, flat = (scores[..., None] + logp).view(n, -1).topk(k, dim=-1)
        parent, token = flat // vocab, flat % vocab
        seqs = torch.cat((seqs.gather(1, parent[..., None].expand(-1, -1, seqs.size(-1))), token[..., None]), dim=-1)
        finished = finished.gather(1, parent) | (token == eos_id)
        _reorder(cache, (parent + torch.arange(n, device=idx.device)[:, None] * k).flatten())
    return seqs[:, 0]  # topk sorts: beam 0 scores highest


def _reorder(cache, order: Tensor) -> None:
    """Keep (and duplicate) the cached rows `order` of every layer's keys and values."""
    if cache.keys.dim() > 1:
        cache.keys = cache.keys[:, order]
    cache.values = cache.values[:, order]
