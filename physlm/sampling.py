"""Batched sampling from a GPT with a KV cache: greedy (temperature 0), softmax sampling, beam search.

Batches: prompts are sorted by (length, input order) and cut into batches of `batch_size` rows whatever their
lengths; a batch of different lengths is left-padded (`GPT.forward(pad=...)`: each row keeps its own
positions and never attends to the filler), so a row's logits are those of the prompt alone up to float
rounding. `mix_lengths=False` keeps the older grouping: each batch holds prompts of one length only.

Noise, chosen per call, so that the same seed always gives the same samples:
- every prompt of the call has the same length (the cfg evaluations' `[<bos>]` prompts): batch b draws one
  uniform tensor [B, vocab] per step from a generator seeded with (seed, b), as physlm always has, so these
  samples are unchanged since before padding existed (golden test in tests/test_sampling.py);
- lengths differ: prompt i draws its own [vocab] per step from a generator seeded with (seed, i), so its
  samples do not depend on which batch it lands in, on `batch_size` or on `mix_lengths`. This is also the
  stream an equal-length call with batch_size=1 gives prompt i.
A token is the Gumbel-max argmax(logits / temperature + gumbel(noise)), an exact sample of
softmax(logits / temperature), so the cached and uncached paths consume identical randomness and give the
same samples. tests/test_sampling.py checks all of this, and that a mixed-length batch gives each prompt
what it gets alone, greedy and sampled, for every positional scheme.

`beam_search` keeps the `beams` continuations of highest total log-probability (no length normalisation)
per prompt, with the KV cache reordered along the surviving beams; a beam that has emitted `eos_id` is
finished and keeps its score. One beam is greedy decoding; with as many beams as there are candidate
sequences it is exact (tests/test_sampling.py checks both against brute force).

Both take `desc`: the name of a progress bar over the prompts on stderr (None: none); `generate` counts a
prompt done when it has written `eos_id` or used up its budget, so the bar moves within a batch too.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor
from tqdm import tqdm

from physlm.device import generator
from physlm.model import GPT, KVCache

Noise = Callable[[int], Tensor]  # vocab size -> uniform noise [B, vocab] for the next step


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
    mix_lengths: bool = True,
    desc: str | None = None,
) -> list[list[int]]:
    """Continuations of each prompt (prompt excluded), cut after the first eos_id (included).

    `batch_size` rows per forward pass whatever the prompts' lengths (left-padded); `mix_lengths=False`
    batches only prompts of one length. Same seed, same samples: see the module docstring for the noise.
    `desc` names a progress bar (None: none)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    _check_prompts(model, prompts, max_new_tokens)
    device = next(model.parameters()).device
    shared = len({len(p) for p in prompts}) <= 1
    was_training = model.training
    model.eval()
    results: list[list[int]] = [[] for _ in prompts]
    bar = tqdm(total=len(prompts), desc=desc, unit="seq", mininterval=1.0, leave=False, disable=desc is None)
    try:
        for b, rows in enumerate(_batches(prompts, batch_size, mix_lengths)):
            idx, pad = _left_pad(prompts, rows, device)
            noise = _shared_noise(generator(device, seed, b), len(rows)) if shared else _row_noise(device, seed, rows)
            new = _sample_batch(model, idx, pad, max_new_tokens, temperature, eos_id, noise, use_cache,
                                None if bar.disable else bar)
            for i, tokens in zip(rows, new.tolist()):
                results[i] = _cut(tokens, eos_id)
    finally:
        bar.close()
        model.train(was_training)
    return results


def _check_prompts(model: GPT, prompts: Sequence[Sequence[int]], max_new_tokens: int) -> None:
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    longest = max((len(p) for p in prompts), default=0)
    if longest + max_new_tokens - 1 > model.cfg.context:
        raise ValueError(
            f"prompt of {longest} tokens + {max_new_tokens} new tokens exceeds the model context {model.cfg.context}"
        )


def _batches(prompts: Sequence[Sequence[int]], batch_size: int, mix_lengths: bool = True) -> Iterator[list[int]]:
    """Indices of prompts in batches, in order of (length, index); of one length each unless mix_lengths."""
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
    groups = [order] if mix_lengths else [list(g) for _, g in itertools.groupby(order, key=lambda i: len(prompts[i]))]
    for rows in groups:
        yield from (rows[i : i + batch_size] for i in range(0, len(rows), batch_size))


def _left_pad(prompts: Sequence[Sequence[int]], rows: list[int], device: torch.device) -> tuple[Tensor, Tensor | None]:
    """The prompts `rows` right-aligned in one [B, longest] batch after filler token 0, and the left-pad count
    of each row (None when all have the same length: the plain unpadded forward)."""
    width = max(len(prompts[i]) for i in rows)
    idx = torch.zeros(len(rows), width, dtype=torch.long)
    for r, i in enumerate(rows):
        idx[r, width - len(prompts[i]) :] = torch.as_tensor(list(prompts[i]), dtype=torch.long)
    pads = [width - len(prompts[i]) for i in rows]
    pad = torch.tensor(pads, device=device) if any(pads) else None
    return idx.to(device), pad


def _shared_noise(gen: torch.Generator, batch: int) -> Noise:
    return lambda vocab: torch.rand((batch, vocab), generator=gen, device=gen.device)


def _row_noise(device: torch.device, seed: int, rows: list[int]) -> Noise:
    gens = [generator(device, seed, i) for i in rows]
    return lambda vocab: torch.stack([torch.rand(vocab, generator=g, device=device) for g in gens])


def _sample_batch(
    model: GPT, idx: Tensor, pad: Tensor | None, max_new_tokens: int, temperature: float, eos_id: int, noise: Noise,
    use_cache: bool, bar: tqdm | None = None,
) -> Tensor:
    """[B, n <= max_new_tokens] new tokens; stops early once every row has produced eos_id. `bar` (if any)
    advances by each row as it writes eos_id, and by the rest at the end."""
    B, T = idx.shape
    cache = model.new_cache(B, T + max_new_tokens - 1) if use_cache else None
    seq, feed, new = idx, idx, []
    done = torch.zeros(B, dtype=torch.bool, device=idx.device)
    counted = 0
    for _ in range(max_new_tokens):
        token = _pick(_last_logits(model, feed, cache, pad), temperature, noise)
        new.append(token)
        done |= token == eos_id
        if bar is not None:
            finished = int(done.sum())
            bar.update(finished - counted)
            counted = finished
        if bool(done.all()):
            break
        seq = torch.cat((seq, token[:, None]), dim=1)
        feed = token[:, None] if use_cache else seq
    if bar is not None:
        bar.update(B - counted)
    return torch.stack(new, dim=1) if new else idx.new_empty(B, 0)


def _last_logits(model: GPT, idx: Tensor, cache: KVCache | None, pad: Tensor | None) -> Tensor:
    """[B, vocab] float logits at the last position. An unpadded batch calls the model without `pad`, exactly
    as before padding existed (stand-in models in the tests implement only that)."""
    logits, _ = model(idx, cache=cache) if pad is None else model(idx, cache=cache, pad=pad)
    return logits[:, -1].float()


def _pick(logits: Tensor, temperature: float, noise: Noise) -> Tensor:
    """Greedy at temperature 0, else Gumbel-max: a sample of softmax(logits / temperature)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    return (logits / temperature - torch.log(-torch.log(noise(logits.size(-1))))).argmax(dim=-1)


def _cut(tokens: list[int], eos_id: int) -> list[int]:
    return tokens[: tokens.index(eos_id) + 1] if eos_id in tokens else tokens


@torch.no_grad()
def beam_search(
    model: GPT,
    prompts: Sequence[Sequence[int]],
    *,
    beams: int,
    max_new_tokens: int,
    eos_id: int,
    batch_size: int = 64,
    desc: str | None = None,
) -> list[list[int]]:
    """The most likely continuation found by beam search for each prompt (prompt excluded, cut after the
    first eos_id). `batch_size` counts sequences (prompts x beams) per forward pass, whatever the prompts'
    lengths. `desc` names a progress bar (None: none)."""
    if beams < 1:
        raise ValueError(f"beams must be >= 1, got {beams}")
    _check_prompts(model, prompts, max_new_tokens)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    results: list[list[int]] = [[] for _ in prompts]
    bar = tqdm(total=len(prompts), desc=desc, unit="seq", mininterval=1.0, leave=False, disable=desc is None)
    try:
        for rows in _batches(prompts, max(1, batch_size // beams)):
            idx, pad = _left_pad(prompts, rows, device)
            for i, tokens in zip(rows, _beam_batch(model, idx, pad, beams, max_new_tokens, eos_id).tolist()):
                results[i] = _cut(tokens, eos_id)
            bar.update(len(rows))
    finally:
        bar.close()
        model.train(was_training)
    return results


def _beam_batch(model: GPT, idx: Tensor, pad: Tensor | None, beams: int, max_new_tokens: int, eos_id: int) -> Tensor:
    """[n, steps] best continuation of each of the n (left-padded) prompts."""
    n, T = idx.shape
    cache = model.new_cache(n, T + max_new_tokens - 1)
    logp = torch.log_softmax(_last_logits(model, idx, cache, pad), dim=-1)  # [n, V]
    k = min(beams, logp.size(-1))
    scores, tokens = logp.topk(k, dim=-1)  # [n, k]
    expand = torch.arange(n, device=idx.device).repeat_interleave(k)
    cache.select(expand)
    pad = pad[expand] if pad is not None else None  # beams only ever reorder within their prompt: pad stays put
    seqs = tokens[..., None]  # [n, k, steps]
    finished = tokens == eos_id
    for _ in range(max_new_tokens - 1):
        if bool(finished.all()):
            break
        logp = torch.log_softmax(_last_logits(model, seqs[..., -1].reshape(-1, 1), cache, pad), dim=-1)
        logp = logp.view(n, k, -1)
        frozen = torch.full_like(logp[0, 0], float("-inf"))
        frozen[eos_id] = 0.0
        logp = torch.where(finished[..., None], frozen, logp)  # a finished beam only "emits" eos, at no cost
        vocab = logp.size(-1)
        scores, flat = (scores[..., None] + logp).view(n, -1).topk(k, dim=-1)
        parent, token = flat // vocab, flat % vocab
        seqs = torch.cat((seqs.gather(1, parent[..., None].expand(-1, -1, seqs.size(-1))), token[..., None]), dim=-1)
        finished = finished.gather(1, parent) | (token == eos_id)
        cache.select((parent + torch.arange(n, device=idx.device)[:, None] * k).flatten())
    return seqs[:, 0]  # topk sorts: beam 0 scores highest
