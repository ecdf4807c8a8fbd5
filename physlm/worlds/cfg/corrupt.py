"""Corrupting terminal strings (Part 1 robustness, SPEC 1.5): the pure, torch-free half of `physlm.worlds.cfg.robust`.

`corrupt` edits one string (replace / delete / insert / swap at a per-token rate); `perturb_sentences`
builds training data where a fraction of sentences is perturbed; `corrupt_prefixes` makes the corrupted
prompts of the robustness evaluation. Randomness is per example: sentence i is perturbed with its own
`random.Random(f"perturb:{seed}:{i}")` and held-out prompt i is corrupted with
`random.Random(f"robust:{seed}:{i}")`, so results do not depend on how the examples are chunked.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

__all__ = ["KINDS", "corrupt", "perturb_sentences", "corrupt_prefixes"]

KINDS = ("replace", "delete", "insert", "swap")


# ------------------------------------------------------------------------------------------ corruption


def corrupt(tokens: Sequence[int], rate: float, num_terminals: int, rng: random.Random, kind: str = "replace", *,
            at_least_one: bool = False) -> list[int]:
    """A corrupted copy of the terminal string ``tokens`` (ids 1..num_terminals); the input is not modified.

    Kinds (each token is visited left to right, one ``rng.random()`` draw per decision):

    * ``replace``: each token, independently with probability ``rate``, becomes a different terminal drawn
      uniformly from the other ``num_terminals - 1`` (so a replaced token always changes; the length is kept).
    * ``delete``: each token is dropped independently with probability ``rate``.
    * ``insert``: after each token, with probability ``rate``, a terminal drawn uniformly from all
      ``num_terminals`` is inserted (it may equal its neighbours; the string still gets longer).
    * ``swap``: scanning positions i = 0, 1, ..., each position not already moved starts, with probability
      ``rate``, a transposition with its right neighbour (then i + 1 is skipped). Transpositions are disjoint,
      a token moves by at most one place, and about rate / (1 + rate) of the positions start one. Swapping two
      equal tokens is a no-op.

    ``at_least_one`` (default False, so the rates above are exact): when ``rate > 0`` and the pass above left
    the string unchanged, force exactly one edit of the same kind at a uniformly random place (for ``swap``,
    among adjacent pairs of different tokens). An empty input, or for ``swap`` one with no two different
    adjacent tokens, cannot be changed and is returned as is. ``rate == 0`` never changes anything.

    Deterministic given the state of ``rng``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    if num_terminals < 1 or (kind == "replace" and rate > 0 and num_terminals < 2):
        raise ValueError(f"kind {kind!r} needs more terminals than {num_terminals}")
    toks = [int(t) for t in tokens]
    if any(not 1 <= t <= num_terminals for t in toks):
        raise ValueError(f"tokens must be terminals 1..{num_terminals}")
    out, changed = _corrupt_pass(toks, rate, num_terminals, rng, kind)
    if at_least_one and rate > 0 and not changed and toks:
        out = _force_one(toks, num_terminals, rng, kind)
    return out


def _other(token: int, num_terminals: int, rng: random.Random) -> int:
    """A terminal drawn uniformly among the num_terminals - 1 that differ from ``token``."""
    pick = rng.randrange(1, num_terminals)
    return pick if pick < token else pick + 1


def _corrupt_pass(toks: list[int], rate: float, v: int, rng: random.Random, kind: str) -> tuple[list[int], bool]:
    """The independent per-token pass of `corrupt`, and whether it changed the string."""
    out: list[int] = []
    if kind == "replace":
        for t in toks:
            out.append(_other(t, v, rng) if rng.random() < rate else t)
        return out, out != toks
    if kind == "delete":
        out = [t for t in toks if rng.random() >= rate]
        return out, len(out) != len(toks)
    if kind == "insert":
        for t in toks:
            out.append(t)
            if rng.random() < rate:
                out.append(rng.randint(1, v))
        return out, len(out) != len(toks)
    out, i = list(toks), 0
    while i < len(out) - 1:
        if rng.random() < rate:
            out[i], out[i + 1] = out[i + 1], out[i]
            i += 2
        else:
            i += 1
    return out, out != toks


def _force_one(toks: list[int], v: int, rng: random.Random, kind: str) -> list[int]:
    """``toks`` with exactly one edit of ``kind`` at a uniformly random place (unchanged if none is possible)."""
    out = list(toks)
    if kind == "replace":
        pos = rng.randrange(len(out))
        out[pos] = _other(out[pos], v, rng)
    elif kind == "delete":
        del out[rng.randrange(len(out))]
    elif kind == "insert":
        out.insert(rng.randrange(len(out)) + 1, rng.randint(1, v))
    else:
        pairs = [i for i in range(len(out) - 1) if out[i] != out[i + 1]]
        if pairs:
            i = rng.choice(pairs)
            out[i], out[i + 1] = out[i + 1], out[i]
    return out


def perturb_sentences(sentences: Sequence[Sequence[int]], *, fraction: float, rate: float, num_terminals: int,
                      seed: int, start: int = 0, kind: str = "replace",
                      at_least_one: bool = True) -> tuple[list[list[int]], list[bool]]:
    """Training data with a fraction of perturbed sentences: (token lists, ``perturbed`` flags).

    Sentence j of ``sentences`` is example ``start + j``; it draws from its own
    ``random.Random(f"perturb:{seed}:{start + j}")``: first one Bernoulli(``fraction``) decides whether it is
    perturbed (so the *expected* share is ``fraction``; the realised count varies, and any chunking of the
    examples gives the same result), then, if so, ``corrupt(..., rate, kind, at_least_one)`` edits it.
    ``perturbed[j]`` is that decision; with ``at_least_one`` (the default) a perturbed sentence always differs
    from the original (except the degenerate ``swap`` case in `corrupt`), and unperturbed ones are copies.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    out: list[list[int]] = []
    flags: list[bool] = []
    for j, sent in enumerate(sentences):
        tokens, hit = perturb_sentence(sent, random.Random(f"perturb:{seed}:{start + j}"), fraction=fraction, rate=rate,
                                       num_terminals=num_terminals, kind=kind, at_least_one=at_least_one)
        out.append(tokens)
        flags.append(hit)
    return out, flags


def perturb_sentence(sentence: Sequence[int], rng: random.Random, *, fraction: float, rate: float, num_terminals: int,
                     kind: str = "replace", at_least_one: bool = True) -> tuple[list[int], bool]:
    """One example of `perturb_sentences` with the caller's RNG (the streamed training data draws it from its
    own): Bernoulli(``fraction``) from ``rng``, then, if hit, ``corrupt``; (tokens, hit)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    hit = rng.random() < fraction
    tokens = corrupt(sentence, rate, num_terminals, rng, kind, at_least_one=at_least_one) if hit else [int(t) for t in sentence]
    return tokens, hit


def corrupt_prefixes(sentences: Sequence[Sequence[int]], *, prefix: int, rate: float, num_terminals: int, seed: int,
                     kind: str = "replace", at_least_one: bool = True) -> tuple[list[list[int]], list[list[int]]]:
    """(clean heads, corrupted heads): the first ``prefix`` terminals of each sentence, and their corruption by
    `corrupt` with ``random.Random(f"robust:{seed}:{i}")`` for sentence i (its index in ``sentences``)."""
    clean = [[int(t) for t in s[:prefix]] for s in sentences]
    bad = [corrupt(h, rate, num_terminals, random.Random(f"robust:{seed}:{i}"), kind, at_least_one=at_least_one)
           for i, h in enumerate(clean)]
    return clean, bad
