"""Tests of physlm.worlds.cfg.diversity (SPEC 1.3 diversity): the collision estimators on distributions of known collision
probability and entropy, exact unbiasedness by enumeration, standard-error calibration, the zero-collision
bound; subtree extraction on hand-built and sampled cfg3b sentences, checked by concatenation and by an
independent memoized derivability test; per-NT diversity against the exact subtree distributions."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import numpy as np
import pytest

from physlm.worlds.cfg.diversity import (
    Estimate,
    _variance,
    chao_shen_entropy,
    collision_entropy,
    compare,
    subtree_diversity,
    subtree_samples,
    subtree_spans,
)
from physlm.worlds.cfg.grammar import Grammar, Sentence, load_grammar, random_grammar, sample_sentences

# ------------------------------------------------------------------------------ known distributions


def uniform(k: int) -> np.ndarray:
    return np.full(k, 1.0 / k)


def zipf(k: int, s: float = 1.0) -> np.ndarray:
    p = 1.0 / np.arange(1, k + 1) ** s
    return p / p.sum()


def draw(p: np.ndarray, n: int, seed: int) -> list[int]:
    return np.random.default_rng(seed).choice(len(p), size=n, p=p).tolist()


def shannon(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


@pytest.mark.parametrize("k", [10, 100, 1000, 10000])
def test_uniform_renyi2_is_log_k(k: int) -> None:
    n = math.ceil(math.sqrt(2 * 200 * k))  # about 200 expected collisions
    for seed in range(5):
        est = collision_entropy(draw(uniform(k), n, seed))
        assert not est.is_lower_bound and est.n == n and est.pairs == math.comb(n, 2)
        assert abs(est.collision_prob - 1 / k) < 4 * est.stderr
        assert abs(est.renyi2_nats - math.log(k)) < 4 * est.renyi2_stderr
        assert est.renyi2_ci[0] < math.log(k) + 4 * est.renyi2_stderr
        assert est.support == pytest.approx(1 / est.collision_prob)


def test_geometric_collision_prob_closed_form() -> None:
    q = 0.9  # p_k = (1 - q) q^k, k >= 0: sum p^2 = (1 - q) / (1 + q)
    c_true = (1 - q) / (1 + q)
    for seed in range(5):
        samples = (np.random.default_rng(seed).geometric(1 - q, size=300) - 1).tolist()
        est = collision_entropy(samples)
        assert abs(est.collision_prob - c_true) < 4 * est.stderr


def test_zipf_collision_prob() -> None:
    p = zipf(2000, 1.1)
    c_true = float((p**2).sum())
    for seed in range(5):
        est = collision_entropy(draw(p, 500, seed))
        assert abs(est.collision_prob - c_true) < 4 * est.stderr
        assert est.renyi2_nats <= shannon(p) + 4 * est.renyi2_stderr  # H2 <= H


@pytest.mark.parametrize("p", [np.array([0.5, 0.3, 0.2]), np.array([0.7, 0.1, 0.1, 0.1])], ids=["3", "4"])
@pytest.mark.parametrize("n", [4, 6])
def test_exactly_unbiased_by_enumeration(p: np.ndarray, n: int) -> None:
    """Over every sequence of n draws: E[C-hat] = C and E[variance estimate] = Var(C-hat)."""
    mean = second = var_mean = 0.0
    for seq in itertools.product(range(len(p)), repeat=n):
        prob = float(np.prod(p[list(seq)]))
        counts = [seq.count(x) for x in set(seq)]
        c_hat = sum(c * (c - 1) for c in counts) / (n * (n - 1))
        mean += prob * c_hat
        second += prob * c_hat**2
        var_mean += prob * _variance(counts, n, clamp=False)
    c_true = float((p**2).sum())
    assert mean == pytest.approx(c_true, abs=1e-12)
    assert var_mean == pytest.approx(second - mean**2, abs=1e-12)


@pytest.mark.parametrize("name,p,n", [("uniform", uniform(500), 500), ("zipf", zipf(1000), 400),
                                      ("geometric", 0.1 * 0.9 ** np.arange(400), 200)])
def test_stderr_calibrated(name: str, p: np.ndarray, n: int) -> None:
    p = p / p.sum()
    c_true = float((p**2).sum())
    z, covered = [], 0
    for rep in range(200):
        est = collision_entropy(draw(p, n, 1000 + rep))
        z.append((est.collision_prob - c_true) / est.stderr)
        covered += est.renyi2_ci[0] <= -math.log(c_true) <= est.renyi2_ci[1]
    assert abs(np.mean(z)) < 0.3
    assert 0.8 < np.std(z) < 1.25
    assert 0.85 <= covered / 200 <= 1.0


@pytest.mark.parametrize("k,n", [(2, 100), (3, 60)])
def test_stderr_conservative_for_few_equal_items(k: int, n: int) -> None:
    """Uniform over a few items is the degenerate case (zeta1 = 0, C-hat not normal): the stderr errs large."""
    z, covered = [], 0
    for rep in range(200):
        est = collision_entropy(draw(uniform(k), n, 5000 + rep))
        z.append((est.collision_prob - 1 / k) / est.stderr)
        covered += est.renyi2_ci[0] <= math.log(k) <= est.renyi2_ci[1]
    assert np.std(z) < 1.1 and covered / 200 >= 0.95


def test_zero_collisions_is_flagged_bound() -> None:
    est = collision_entropy(list(range(100)))
    pairs = math.comb(100, 2)
    assert est.is_lower_bound and est.collisions == 0 and est.collision_prob == 0.0
    assert est.renyi2_nats == pytest.approx(math.log(pairs)) and est.support == pairs
    assert math.isnan(est.stderr) and math.isnan(est.renyi2_stderr)
    assert est.renyi2_ci == (pytest.approx(math.log(pairs / math.log(20))), math.inf)


def test_all_identical() -> None:
    est = collision_entropy([(1, 2, 3)] * 50)
    assert not est.is_lower_bound and est.collisions == math.comb(50, 2)
    assert est.collision_prob == 1.0 and est.renyi2_nats == 0.0 and est.support == 1.0 and est.stderr == 0.0
    assert est.renyi2_ci == (0.0, 0.0)


def test_lists_and_arrays_count_as_strings() -> None:
    a = collision_entropy([[1, 2], [1, 2], [3], [4]])
    b = collision_entropy([np.array([1, 2]), np.array([1, 2]), np.array([3]), np.array([4])])
    assert a == b and a.collisions == 1 and a.collision_prob == 1 / 6


def test_bad_inputs() -> None:
    with pytest.raises(ValueError):
        collision_entropy([1])
    with pytest.raises(ValueError):
        collision_entropy([1, 2], confidence=1.0)
    assert math.isnan(collision_entropy([1, 1, 2]).stderr)  # n < 4: no variance estimate


@pytest.mark.parametrize("name,p,n", [("uniform200", uniform(200), 400), ("uniform1000", uniform(1000), 1000),
                                      ("zipf", zipf(1000), 3000), ("geometric", 0.05 * 0.95 ** np.arange(600), 300)])
def test_chao_shen_near_shannon(name: str, p: np.ndarray, n: int) -> None:
    p = p / p.sum()
    h = shannon(p)
    estimates = [chao_shen_entropy(draw(p, n, seed)) for seed in range(5)]
    plugin = [shannon(np.bincount(draw(p, n, seed)) / n) for seed in range(5)]
    assert abs(np.mean(estimates) - h) < 0.05 * h
    assert abs(np.mean(estimates) - h) < abs(np.mean(plugin) - h)  # better than the plug-in estimate


def test_compare() -> None:
    model = draw(uniform(50), 2000, 1)  # a "memorising" model
    reference = draw(uniform(5000), 2000, 2)
    out = compare(model, reference)
    assert out["gap_kind"] == "value"
    assert abs(out["renyi2_gap_nats"] - math.log(100)) < 4 * out["gap_stderr"]
    assert out["gap_z"] > 10 and out["support_ratio"] < 0.05
    assert out["model"]["support"] == pytest.approx(50, rel=0.2)
    assert set(out["chao_shen_nats"]) == {"model", "reference"}
    assert compare(list(range(100)), reference)["gap_kind"] == "at_most"
    assert compare(reference, list(range(100)))["gap_kind"] == "at_least"
    assert compare(list(range(100)), list(range(100)))["gap_kind"] == "undetermined"


# ---------------------------------------------------------------------------------------- subtrees

HAND = Sentence(
    tokens=[1, 2, 3, 1, 2],
    ancestors=[[10, 10, 10, 11, 11], [7, 7, 8, 7, 9]],
    boundaries=[[0, 0, 1, 0, 1], [0, 1, 1, 1, 1]],
)
TWINS = Sentence(tokens=[1, 1], ancestors=[[10, 10], [7, 7]], boundaries=[[1, 1], [1, 1]])


def test_subtree_samples_hand_built() -> None:
    assert subtree_spans(HAND, 1) == [(10, (1, 2, 3)), (11, (1, 2))]
    assert subtree_spans(HAND, 2) == [(7, (1, 2)), (8, (3,)), (7, (1,)), (9, (2,))]
    assert subtree_samples([HAND, TWINS], 1) == {10: [(1, 2, 3), (1,), (1,)], 11: [(1, 2)]}
    assert subtree_samples([HAND, TWINS], 2) == {7: [(1, 2), (1,), (1,), (1,)], 8: [(3,)], 9: [(2,)]}
    assert set(subtree_diversity([HAND, TWINS], 2)) == {7}  # symbols seen once are skipped


@pytest.mark.parametrize("sentence,level", [
    (Sentence(tokens=[1, 2], ancestors=[[10, 11]], boundaries=[[0, 1]]), 1),  # symbol changes mid-subtree
    (Sentence(tokens=[1, 2], ancestors=[[10, 10]], boundaries=[[1, 0]]), 1),  # last token ends nothing
    (Sentence(tokens=[1, 2], ancestors=[[10, 10]], boundaries=[[0, 1]]), 2),  # no such level
    (Sentence(tokens=[1, 2], ancestors=[[10, 10]], boundaries=[[0, 1]]), 0),
    (Sentence(tokens=[1, 2], ancestors=[[10]], boundaries=[[1]]), 1),  # labels too short
])
def test_subtree_spans_rejects_bad_labels(sentence: Sentence, level: int) -> None:
    with pytest.raises(ValueError):
        subtree_spans(sentence, level)


def derivable(g: Grammar, symbol: int, string: Sequence[int]) -> bool:
    """True iff ``symbol`` derives ``string``: memoized recursion over spans and rule splits (test oracle)."""
    s = tuple(string)

    @functools.cache
    def bounds(sym: int) -> tuple[int, int]:
        if sym not in g.rules:
            return 1, 1
        sums = [(sum(bounds(x)[0] for x in alt), sum(bounds(x)[1] for x in alt)) for alt in g.rules[sym]]
        return min(lo for lo, _ in sums), max(hi for _, hi in sums)

    @functools.cache
    def span(sym: int, i: int, j: int) -> bool:
        if sym not in g.rules:
            return j - i == 1 and s[i] == sym
        lo, hi = bounds(sym)
        return lo <= j - i <= hi and any(seq(alt, i, j) for alt in g.rules[sym])

    def seq(alt: tuple[int, ...], i: int, j: int) -> bool:
        if len(alt) == 1:
            return span(alt[0], i, j)
        rest_lo = sum(bounds(x)[0] for x in alt[1:])
        rest_hi = sum(bounds(x)[1] for x in alt[1:])
        lo, hi = bounds(alt[0])
        cuts = range(max(i + lo, j - rest_hi), min(i + hi, j - rest_lo) + 1)
        return any(span(alt[0], i, k) and seq(alt[1:], k, j) for k in cuts)

    return span(symbol, 0, len(s))


def language(g: Grammar, symbol: int) -> set[tuple[int, ...]]:
    if symbol not in g.rules:
        return {(symbol,)}
    out: set[tuple[int, ...]] = set()
    for alt in g.rules[symbol]:
        for parts in itertools.product(*(language(g, x) for x in alt)):
            out.add(tuple(itertools.chain.from_iterable(parts)))
    return out


def test_derivable_oracle_matches_enumeration() -> None:
    g = random_grammar(seed=3, symbols_per_level=[1, 2, 2, 2], rules_per_symbol=(1, 2), rule_length=(1, 3))
    for level in g.nonterminal_levels:
        for sym in level:
            lang = language(g, sym)
            longest = max(map(len, lang))
            for length in range(1, longest + 2):
                for string in itertools.product(g.terminals, repeat=length):
                    assert derivable(g, sym, string) == (string in lang), (sym, string)


def test_subtree_samples_on_cfg3b() -> None:
    g = load_grammar("cfg3b")
    sentences = sample_sentences(g, seed=7, start=0, count=12)
    for level in range(1, g.depth):
        for sentence in sentences:
            spans = subtree_spans(sentence, level)
            assert [t for _, string in spans for t in string] == sentence.tokens
            assert all(sym in g.levels[level] for sym, _ in spans)
        per_symbol = subtree_samples(sentences, level)
        assert sum(map(len, per_symbol.values())) == sum(len(subtree_spans(s, level)) for s in sentences)
        for sym, strings in per_symbol.items():
            for string in set(strings):
                assert derivable(g, sym, string), (level, sym, string)


def string_distribution(g: Grammar, symbol: int) -> dict[tuple[int, ...], float]:
    """Exact distribution of the string a symbol yields under uniform rule choice (small symbols only)."""
    if symbol not in g.rules:
        return {(symbol,): 1.0}
    out: dict[tuple[int, ...], float] = {}
    alts = g.rules[symbol]
    for alt in alts:
        for parts in itertools.product(*(string_distribution(g, x).items() for x in alt)):
            string = tuple(itertools.chain.from_iterable(s for s, _ in parts))
            out[string] = out.get(string, 0.0) + math.prod(p for _, p in parts) / len(alts)
    return out


def test_subtree_diversity_matches_exact_distribution_on_cfg3b() -> None:
    """The grammar's own subtrees at the three deepest NT levels: estimates agree with the exact C."""
    g = load_grammar("cfg3b")
    sentences = sample_sentences(g, seed=11, start=0, count=150)
    for level in (g.depth - 1, g.depth - 2, g.depth - 3):
        estimates = subtree_diversity(sentences, level)
        assert set(estimates) == set(g.levels[level])
        for sym, est in estimates.items():
            c_true = sum(p * p for p in string_distribution(g, sym).values())
            assert isinstance(est, Estimate) and not est.is_lower_bound
            assert abs(est.collision_prob - c_true) < 4 * est.stderr, (level, sym, est, c_true)
    deepest = subtree_diversity(sentences, g.depth - 1)  # two rules with different strings: C = 1/2
    assert all(abs(e.renyi2_nats - math.log(2)) < 4 * e.renyi2_stderr for e in deepest.values())
