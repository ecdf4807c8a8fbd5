"""Corruption statistics, perturbed training data, and robust-eval scoring (physlm.worlds.cfg.robust).

The scoring is checked with stand-in models built on the grammar's exact next-token distribution: a
grammar oracle must score `clean` == 1, and an oracle that knows the intended head of each corrupted prompt
must score `repaired` == 1 while the plain oracle, which follows the corrupted prompt, must not.
"""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from physlm.model import GPT, GPTConfig
from physlm.worlds.cfg.robust import KINDS, breaks_early, corrupt, corrupt_prefixes, perturb_sentences, robust_eval
from physlm.worlds.cfg.grammar import Judge, parse_grammar, sample_sentences
from physlm.worlds.cfg.dist import next_token_distributions

pytestmark = pytest.mark.usefixtures("one_thread")

# terminals 1..3, level-2 NTs 7..9, level-1 NTs 10..11, root 12; sentences of 8..14 terminals
TOY = parse_grammar(
    "# toy: symbols per level (root first, terminals last) [1, 2, 3, 3]\n"
    "12 -> 10 11 | 11 10\n10 -> 7 8 | 9 7 9\n11 -> 8 9 | 7 7\n"
    "7 -> 1 2 | 3 1\n8 -> 2 2 | 1 3 3\n9 -> 3 2 | 2 1 1\n",
    "toy",
)
V = len(TOY.terminals)
METRICS = {"repaired", "clean", "malformed", "clean_malformed", "follows_corruption", "clean_breaks_early"}


def toy_sentences(n: int, seed: int = 0) -> list[list[int]]:
    return [s.tokens for s in sample_sentences(TOY, seed, 0, n)]


def ids(terminals) -> list[int]:
    return [t + 1 for t in terminals]


# ------------------------------------------------------------------------------------------ corruption


def test_replace_rate_and_replaced_tokens_always_differ() -> None:
    rng = random.Random(0)
    tokens = [rng.randint(1, 3) for _ in range(10_000)]
    out = corrupt(tokens, 0.2, 3, random.Random(1), "replace")
    assert len(out) == len(tokens) and all(1 <= t <= 3 for t in out)
    # with 3 terminals, a replacement that could redraw the same token would change only 2/3 * 20%
    changed = sum(a != b for a, b in zip(tokens, out))
    assert abs(changed - 2000) < 160  # sd 40
    everything = corrupt(tokens, 1.0, 3, random.Random(2), "replace")
    assert all(a != b for a, b in zip(tokens, everything))
    ones = [b for a, b in zip(tokens, everything) if a == 1]  # uniform over the other two terminals
    assert abs(np.mean(np.array(ones) == 2) - 0.5) < 0.05


def test_delete_and_insert_rates_and_structure() -> None:
    rng = random.Random(0)
    tokens = [rng.randint(1, 5) for _ in range(10_000)]
    shorter = corrupt(tokens, 0.2, 5, random.Random(1), "delete")
    assert abs(len(shorter) - 8000) < 160
    it = iter(tokens)
    assert all(t in it for t in shorter)  # a subsequence of the input
    longer = corrupt(tokens, 0.2, 5, random.Random(1), "insert")
    assert abs(len(longer) - 12000) < 160
    it = iter(longer)
    assert all(t in it for t in tokens)  # the input is a subsequence of the output
    assert longer[0] == tokens[0]  # insertions only come after a token
    assert set(longer) <= set(range(1, 6))


def test_swap_is_disjoint_adjacent_transpositions_at_the_rate() -> None:
    n = 10_000
    tokens = list(range(1, n + 1))  # all distinct, so every transposition is visible
    out = corrupt(tokens, 0.2, n, random.Random(3), "swap")
    assert sorted(out) == tokens
    i, swaps = 0, 0
    while i < n:
        if out[i] == tokens[i]:
            i += 1
        else:
            assert out[i] == tokens[i + 1] and out[i + 1] == tokens[i]
            swaps, i = swaps + 1, i + 2
    assert abs(swaps - (n - 1) * 0.2 / 1.2) < 150  # sd about 30


@pytest.mark.parametrize("kind", KINDS)
def test_corrupt_is_deterministic_and_leaves_input_alone(kind: str) -> None:
    tokens = toy_sentences(1)[0]
    before = list(tokens)
    first = corrupt(tokens, 0.3, V, random.Random("x"), kind)
    assert first == corrupt(tokens, 0.3, V, random.Random("x"), kind)
    assert tokens == before
    assert corrupt(tokens, 0.0, V, random.Random("x"), kind, at_least_one=True) == tokens


@pytest.mark.parametrize("kind", KINDS)
def test_at_least_one_forces_exactly_one_edit(kind: str) -> None:
    tokens = [1, 2, 3, 1, 2, 3, 3, 1]
    plain = [corrupt(tokens, 1e-9, V, random.Random(i), kind) for i in range(50)]
    assert all(p == tokens for p in plain)
    forced = [corrupt(tokens, 1e-9, V, random.Random(i), kind, at_least_one=True) for i in range(50)]
    assert all(f != tokens for f in forced)
    if kind == "replace":
        assert all(sum(a != b for a, b in zip(tokens, f)) == 1 for f in forced)
    elif kind in ("delete", "insert"):
        assert all(abs(len(f) - len(tokens)) == 1 for f in forced)
    else:
        assert all(sum(a != b for a, b in zip(tokens, f)) == 2 for f in forced)
    assert corrupt([], 0.5, V, random.Random(0), kind, at_least_one=True) == []


def test_corrupt_rejects_bad_arguments() -> None:
    rng = random.Random(0)
    with pytest.raises(ValueError, match="kind"):
        corrupt([1], 0.1, 3, rng, "shuffle")
    with pytest.raises(ValueError, match="rate"):
        corrupt([1], 1.5, 3, rng)
    with pytest.raises(ValueError, match="terminals"):
        corrupt([1], 0.1, 1, rng, "replace")
    with pytest.raises(ValueError, match="terminals"):
        corrupt([4], 0.1, 3, rng)


# ------------------------------------------------------------------------------------ training data


def test_perturb_sentences_fraction_flags_and_lengths() -> None:
    rng = random.Random(0)
    sentences = [[rng.randint(1, 3) for _ in range(rng.randint(5, 30))] for _ in range(5000)]
    out, flags = perturb_sentences(sentences, fraction=0.1, rate=0.1, num_terminals=3, seed=7)
    assert abs(sum(flags) - 500) < 85  # Bernoulli(0.1) per sentence: sd 21
    for src, dst, hit in zip(sentences, out, flags):
        assert len(dst) == len(src)  # replace keeps the length
        assert (dst != src) == hit  # perturbed sentences always change (at_least_one), others are copies
    edits = sum(a != b for src, dst, hit in zip(sentences, out, flags) if hit for a, b in zip(src, dst))
    tokens = sum(len(src) for src, hit in zip(sentences, flags) if hit)
    assert 0.08 < edits / tokens < 0.14  # rate 0.1 plus the forced edit of the sentences left unchanged


def test_perturb_sentences_is_deterministic_and_chunk_independent() -> None:
    sentences = toy_sentences(60)
    args = {"fraction": 0.5, "rate": 0.3, "num_terminals": V, "seed": 3, "kind": "insert"}
    whole = perturb_sentences(sentences, **args)
    assert whole == perturb_sentences(sentences, **args)
    a = perturb_sentences(sentences[:25], **args)
    b = perturb_sentences(sentences[25:], **args, start=25)
    assert (a[0] + b[0], a[1] + b[1]) == whole
    assert perturb_sentences(sentences, **{**args, "seed": 4}) != whole
    assert perturb_sentences(sentences, **{**args, "fraction": 0.0}) == (sentences, [False] * 60)
    assert all(perturb_sentences(sentences, **{**args, "fraction": 1.0})[1])


def test_corrupt_prefixes_per_example() -> None:
    sentences = toy_sentences(10)
    clean, bad = corrupt_prefixes(sentences, prefix=5, rate=0.3, num_terminals=V, seed=1)
    assert clean == [s[:5] for s in sentences]
    assert all(len(b) == 5 and b != c for b, c in zip(bad, clean))
    # the index within the list seeds the corruption, so it does not depend on the other sentences' draws
    alone = corrupt_prefixes(sentences[3:4], prefix=5, rate=0.3, num_terminals=V, seed=1)[1][0]
    assert alone == corrupt(sentences[3][:5], 0.3, V, random.Random("robust:1:0"), at_least_one=True)
    assert bad[3] == corrupt(sentences[3][:5], 0.3, V, random.Random("robust:1:3"), at_least_one=True)


# ---------------------------------------------------------------------------------------------- scoring


def test_breaks_early_on_hand_built_continuations() -> None:
    judge = Judge(TOY)
    tried = 0
    for sent in toy_sentences(20, seed=5):
        head, rest = sent[:3], sent[3:]
        assert not breaks_early(TOY, head, ids(rest) + [1], k=10)  # the true completion
        assert not breaks_early(TOY, head, ids(rest) + [1], k=1)
        assert not breaks_early(TOY, head, ids(rest[:2]), k=10)  # unfinished but still viable
        assert breaks_early(TOY, head, [0] + ids(rest), k=10)  # <bos> inside
        assert breaks_early(TOY, head, [1], k=10) == (not judge(head))  # <eos> right away
        assert breaks_early(TOY, head, [V + 2], k=10)  # not a token of the vocabulary
        dist = next_token_distributions(TOY, sent)
        # a position at least two past the head where some terminal is impossible, and such a terminal
        found = next(((p, t) for p in range(4, len(sent)) for t in TOY.terminals if dist[p, t] == 0), None)
        if found is None:
            continue
        tried += 1
        pos, bad = found
        wrong = ids(sent[3:pos]) + [bad + 1] + ids(sent[pos + 1:]) + [1]
        assert breaks_early(TOY, head, wrong, k=pos - 3 + 1, judge=judge)
        assert not breaks_early(TOY, head, wrong, k=pos - 3)  # the error lies just beyond the first k
    assert tried >= 10
    with pytest.raises(ValueError, match="k"):
        breaks_early(TOY, [1], [1], k=0)


class _History:
    """The stand-in KV cache: the token ids fed so far, per row."""

    def __init__(self, batch: int) -> None:
        self.rows: list[list[int]] = [[] for _ in range(batch)]


class GrammarOracle(torch.nn.Module):
    """A model whose next-token distribution is the grammar's exact one given the terminals so far.

    After a prefix no sentence has (or one with a special token inside) it is uniform over <eos> and the
    terminals. ``repair`` maps corrupted heads to the intended ones: a prompt starting with a known corrupted
    head is continued as if it started with the clean head (a perfectly robust model). It supports what
    `physlm.sampling.generate` uses (cfg.context, parameters, new_cache, forward with cache); only the last
    position's logits are meaningful.
    """

    def __init__(self, grammar, context: int, repair: dict[tuple[int, ...], list[int]] | None = None) -> None:
        super().__init__()
        self.grammar, self.repair = grammar, repair or {}
        self.cfg = SimpleNamespace(context=context)
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def new_cache(self, batch: int, positions: int | None = None) -> _History:
        return _History(batch)

    def _next(self, token_ids: list[int]) -> torch.Tensor:
        logits = torch.zeros(len(self.grammar.terminals) + 2)
        logits[0] = -1e4  # never <bos>
        terms = [t - 1 for t in token_ids[1:]]
        if any(t < 1 for t in terms):
            return logits
        for bad, good in self.repair.items():
            if tuple(terms[: len(bad)]) == bad:
                terms = list(good) + terms[len(bad):]
                break
        try:
            probs = torch.as_tensor(next_token_distributions(self.grammar, terms)[-1], dtype=torch.float32)
        except ValueError:
            return logits
        logits[1:] = torch.where(probs > 0, probs.clamp_min(1e-30).log(), torch.tensor(-1e4))
        return logits

    def forward(self, idx: torch.Tensor, cache: _History | None = None):
        rows = idx.tolist()
        if cache is not None:
            for hist, new in zip(cache.rows, rows):
                hist.extend(new)
            rows = cache.rows
        last = torch.stack([self._next(r) for r in rows])
        return last[:, None, :].expand(idx.size(0), idx.size(1), -1), None


def test_grammar_oracle_scores_clean_one_and_follows_corruption() -> None:
    sentences = toy_sentences(24, seed=2)
    model = GrammarOracle(TOY, context=24)
    found = robust_eval(model, TOY, sentences, prefix=6, rate=0.3, temperatures=(0.1, 1.0), context=24, seed=0,
                        batch_size=8, k=5)
    assert json.loads(json.dumps(found)) == found
    assert found["changed"] == 1.0 and found["n"] == 24 and found["max_new_tokens"] == 24 - 1 - 6
    for key in ("T0.1", "T1.0"):
        scores = found[key]
        assert set(scores) == METRICS
        assert scores["clean"] == 1.0 and scores["clean_malformed"] == 0.0 and scores["clean_breaks_early"] == 0.0
        # it continues the corrupted head, so the clean head + its continuation is mostly not a sentence
        assert scores["repaired"] < 0.5 and scores["follows_corruption"] > 0.5
        assert scores["repaired"] + scores["follows_corruption"] <= 1.0
    nothing = robust_eval(model, TOY, sentences, prefix=6, rate=0.0, temperatures=(1.0,), context=24, seed=0,
                          batch_size=8)
    assert nothing["changed"] == 0.0
    assert nothing["T1.0"]["repaired"] == 1.0 and nothing["T1.0"]["follows_corruption"] == 0.0


def test_repairing_oracle_scores_repaired_one() -> None:
    sentences = toy_sentences(16, seed=5)
    clean, bad = corrupt_prefixes(sentences, prefix=7, rate=0.3, num_terminals=V, seed=0)
    repair = {tuple(b): c for b, c in zip(bad, clean)}
    # the lookup is unambiguous: no corrupted head stands for two clean heads or equals a clean head
    assert all(repair[tuple(b)] == c for b, c in zip(bad, clean)) and not repair.keys() & {tuple(c) for c in clean}
    model = GrammarOracle(TOY, context=24, repair=repair)
    found = robust_eval(model, TOY, sentences, prefix=7, rate=0.3, temperatures=(1.0,), context=24, seed=0,
                        batch_size=8)
    assert found["T1.0"]["repaired"] == 1.0 and found["T1.0"]["follows_corruption"] == 0.0
    assert found["T1.0"]["clean"] == 1.0


def test_robust_eval_on_a_tiny_gpt() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=V + 2, context=32, depth=1, width=32, heads=2))
    sentences = toy_sentences(6, seed=1)
    args = {"prefix": 5, "rate": 0.25, "kind": "insert", "temperatures": (0.0, 1.0), "context": 32, "seed": 3,
            "batch_size": 4}
    found = robust_eval(model, TOY, sentences, **args)
    assert found == robust_eval(model, TOY, sentences, **args)
    top = {"n", "prefix", "rate", "kind", "k", "at_least_one", "max_new_tokens", "changed"}
    assert set(found) == top | {"T0.0", "T1.0"}
    assert found["kind"] == "insert" and found["changed"] == 1.0 and found["max_new_tokens"] < 32 - 1 - 5
    for key in ("T0.0", "T1.0"):
        assert set(found[key]) == METRICS
        assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in found[key].values())
    with pytest.raises(ValueError, match="no room"):
        robust_eval(model, TOY, sentences, **{**args, "context": 6})
