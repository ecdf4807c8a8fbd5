"""Robustness to corrupted prefixes (SPEC 1.5): corrupting token strings, perturbing training data, and
scoring a model's continuations of corrupted prompts.

The experiment: pretrain on clean sentences, or on a mix where a fraction of the sentences is perturbed
(`perturb_sentences`); then take held-out sentences, corrupt their first `prefix` terminals (`corrupt`) and
let the model continue the corrupted prompt (`robust_eval`). A robust model *repairs*: the intended (clean)
prefix followed by its continuation is a sentence of the grammar. The paper's "mode switch" is that a model
pretrained on perturbed data repairs at low temperature but reproduces errors at high temperature; here it
shows as `follows_corruption` (a continuation that cannot follow the clean prefix within its first K
symbols) rising with the temperature while `repaired` falls.

Randomness is per example: sentence i is perturbed with its own `random.Random(f"perturb:{seed}:{i}")` and
held-out prompt i is corrupted with `random.Random(f"robust:{seed}:{i}")`, so results do not depend on how
the examples are chunked, and each one regenerates alone. Sampling goes through `physlm.sampling.generate`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from physlm.worlds.cfg.generation import finished
from physlm.sampling import generate
from physlm.tokenize import Vocab
from physlm.worlds.cfg.tokenize import cfg_encode
from physlm.worlds.cfg.grammar import Grammar, Judge
from physlm.worlds.cfg.corrupt import KINDS, corrupt, corrupt_prefixes, perturb_sentences
from physlm.worlds.cfg.dist import next_token_distributions

__all__ = ["KINDS", "corrupt", "perturb_sentences", "corrupt_prefixes", "breaks_early", "robust_eval"]

# ------------------------------------------------------------------------------------------- scoring


def _viable(grammar: Grammar, terminals: list[int]) -> bool:
    """True iff some sentence of the grammar starts with ``terminals`` (all known to be terminal ids)."""
    try:
        next_token_distributions(grammar, terminals)
    except ValueError:  # raised exactly when the prefix has probability 0 (the ids were checked by the caller)
        return False
    return True


def breaks_early(grammar: Grammar, prefix: Sequence[int], continuation: Sequence[int], k: int = 10,
                 judge: Callable[[Sequence[int]], bool] | None = None) -> bool:
    """Whether the first ``k`` symbols of a generated continuation already cannot follow ``prefix``.

    ``prefix`` is a string of terminals; ``continuation`` the raw token ids the model generated after
    ``<bos> prefix`` (terminal t is id t + 1, ``<eos>`` is 1, ``<bos>`` 0; as returned by `generate`). Its first
    ``k`` ids are read left to right and the answer is True at the first one that no sentence of the grammar
    allows there: a terminal t such that ``prefix + (terminals so far) + t`` is not a prefix of any sentence
    (probability 0 under `cfg_dist.next_token_distributions`), an ``<eos>`` where ``prefix + (terminals so
    far)`` is not a sentence (exact `Judge`), or a ``<bos>`` / out-of-vocabulary id. False if all ``k`` (or all,
    when fewer) are allowed, including a continuation that stops without ``<eos>``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    vocab = len(grammar.terminals)
    head = [int(t) for t in prefix]
    terms: list[int] = []
    for tok in list(continuation)[:k]:
        tok = int(tok)
        if tok == Vocab.eos_id:
            return not (judge or Judge(grammar))(head + terms)
        if not 2 <= tok <= vocab + 1:
            return True
        terms.append(tok - 1)
    return not _viable(grammar, head + terms)


def _continue(model: torch.nn.Module, heads: Sequence[Sequence[int]], *, max_new_tokens: int, temperature: float,
              seed: int, batch_size: int, desc: str | None) -> list[list[int]]:
    """Raw continuations (token ids, cut after <eos>) of ``<bos> head`` for each terminal string ``head``
    (`desc`: a progress bar's name, None: none)."""
    prompts = [[Vocab.bos_id, *cfg_encode(np.asarray(h, dtype=np.int64)).tolist()] for h in heads]
    return generate(model, prompts, max_new_tokens=max_new_tokens, temperature=temperature, eos_id=Vocab.eos_id,
                    seed=seed, batch_size=batch_size, desc=desc)


def _score_run(grammar: Grammar, judge: Judge, clean: list[list[int]], outs: list[list[int]],
               k: int) -> tuple[float, float, float]:
    """(share repaired, share malformed, share breaking early) of continuations ``outs`` read after ``clean``."""
    tails = [finished(o) for o in outs]
    full = [None if t is None else head + t for head, t in zip(clean, tails)]
    ok = [f is not None and len(f) > 0 and judge(f) for f in full]
    repaired = float(np.mean(ok))
    malformed = float(np.mean([t is None for t in tails]))
    early = float(np.mean([not good and breaks_early(grammar, head, out, k, judge)
                           for good, head, out in zip(ok, clean, outs)]))
    return repaired, malformed, early


def robust_eval(model: torch.nn.Module, grammar: Grammar, sentences: Sequence[Sequence[int]], *, prefix: int,
                rate: float, temperatures: Sequence[float] = (0.1, 1.0), kind: str = "replace", context: int,
                seed: int, batch_size: int, k: int = 10, at_least_one: bool = True, desc: str | None = None) -> dict:
    """Generation accuracy on corrupted prompts, against the clean-prompt baseline, at each temperature.

    For held-out sentence i, the clean head is its first ``prefix`` terminals and the corrupted head is
    ``corrupt(clean head, rate, kind, at_least_one)`` with ``random.Random(f"robust:{seed}:{i}")`` (see
    `corrupt_prefixes`). At each temperature the model continues ``<bos> head`` for both heads via
    `physlm.sampling.generate` (same ``seed``, so replace/swap prompts get the same sampling noise as their
    clean twins), with the same budget for every prompt: ``max_new_tokens = context - 1 - L``, L the longest
    head of either kind (= ``prefix`` unless ``insert`` lengthened some). Every share is over all n sentences:

    * ``repaired``: the CLEAN head + the continuation of the CORRUPTED head is in the language (exact `Judge`),
      i.e. the model recovered the intended structure instead of carrying the errors on. A continuation that
      never emits ``<eos>`` or contains a special token counts as wrong.
    * ``clean``: the clean head + the continuation of the clean head is in the language (cut-``prefix``
      accuracy at this temperature; the baseline for ``repaired``).
    * ``malformed`` / ``clean_malformed``: the continuation of the corrupted / clean head never emitted
      ``<eos>`` within the budget or contains ``<bos>``.
    * ``follows_corruption``: `breaks_early` (clean head, continuation of the CORRUPTED head, ``k``): within its
      first ``k`` symbols the continuation does something no sentence starting with the clean head allows,
      i.e. it is conditioned on the corrupted tokens (reproducing errors, or continuing a re-parse of the
      corrupted head; the metric does not tell those apart). ``clean_breaks_early`` is the same for the
      continuation of the clean head: the model's own error rate, the baseline. The mode switch shows as
      ``follows_corruption`` low at low temperature and high at high temperature.

    Returns ``{"n", "prefix", "rate", "kind", "k", "at_least_one", "max_new_tokens", "changed",
    "T<temperature>": {"repaired", "clean", "malformed", "clean_malformed", "follows_corruption",
    "clean_breaks_early"}, ...}`` where ``changed`` is the share of corrupted heads that differ from the clean
    ones and the temperature keys are ``f"T{float(t)}"`` (``"T0.1"``, ``"T1.0"``); all values are JSON-ready.
    ``desc`` names a progress bar per temperature and kind of head (None: none).
    """
    if not sentences:
        raise ValueError("robust_eval needs at least one sentence")
    if prefix < 1:
        raise ValueError(f"prefix must be >= 1, got {prefix}")
    num_terminals = len(grammar.terminals)
    clean, bad = corrupt_prefixes(sentences, prefix=prefix, rate=rate, num_terminals=num_terminals, seed=seed,
                                  kind=kind, at_least_one=at_least_one)
    longest = max(len(h) for h in clean + bad)
    budget = context - 1 - longest
    if budget < 1:
        raise ValueError(f"a head of {longest} terminals leaves no room to generate within context {context}")
    judge = Judge(grammar)
    result: dict = {"n": len(clean), "prefix": prefix, "rate": float(rate), "kind": kind, "k": k,
                    "at_least_one": at_least_one, "max_new_tokens": budget,
                    "changed": float(np.mean([c != b for c, b in zip(clean, bad)]))}
    for temperature in temperatures:
        run = {"max_new_tokens": budget, "temperature": float(temperature), "seed": seed, "batch_size": batch_size}
        bars = {h: None if desc is None else f"{desc} T{float(temperature)} {h} heads" for h in ("clean", "corrupted")}
        clean_acc, clean_bad, clean_early = _score_run(grammar, judge, clean, _continue(model, clean, **run, desc=bars["clean"]), k)
        repaired, malformed, follows = _score_run(grammar, judge, clean, _continue(model, bad, **run, desc=bars["corrupted"]), k)
        result[f"T{float(temperature)}"] = {
            "repaired": repaired, "clean": clean_acc, "malformed": malformed, "clean_malformed": clean_bad,
            "follows_corruption": follows, "clean_breaks_early": clean_early,
        }
    return result
