"""Tests of physlm.worlds.cfg.dist: the next-token distributions against the string distribution enumerated
from every derivation of small (also ambiguous) grammars, exactly and in float; consistency with ``Judge``
on published grammars; invalid prefixes; and the SPEC's smoothed KL."""

from __future__ import annotations

import itertools
import math
import random
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from physlm.worlds.cfg.grammar import Grammar, Judge, layered_ids, load_grammar, random_grammar, sample_sentences
from physlm.worlds.cfg.dist import kl_per_position, mean_kl, next_token_distributions

Language = dict[tuple[int, ...], Fraction]


def _ambiguous() -> Grammar:
    """Terminals 1, 2; "1 2" is derived by 6 -> 1 2 and by 7 -> 1 2, and longer strings in several ways."""
    levels = layered_ids([1, 2, 2, 2])  # root 10; level 1: 8, 9; level 2: 6, 7; terminals 1, 2
    rules = {10: ((8, 9), (9, 8), (8,)), 8: ((6, 7), (7,)), 9: ((6,), (7, 6)), 6: ((1,), (1, 2)), 7: ((2,), (1, 2))}
    return Grammar(name="ambiguous", levels=levels, rules=rules)


GRAMMARS = [
    _ambiguous(),
    *(random_grammar(seed=s, symbols_per_level=[1, 2, 2, 2], rules_per_symbol=(1, 2), rule_length=(1, 3))
      for s in range(3)),
    *(random_grammar(seed=s, symbols_per_level=[1, 2, 2, 2, 2], rules_per_symbol=(1, 2), rule_length=(1, 2))
      for s in range(3)),
]


def _derivations(g: Grammar, sym: int) -> list[tuple[tuple[int, ...], Fraction]]:
    """Every derivation from ``sym`` as (string, probability = product of 1/#rules)."""
    if sym in g.terminals:
        return [((sym,), Fraction(1))]
    out = []
    weight = Fraction(1, len(g.rules[sym]))
    for alt in g.rules[sym]:
        for parts in itertools.product(*(_derivations(g, child) for child in alt)):
            string = tuple(itertools.chain.from_iterable(s for s, _ in parts))
            out.append((string, weight * math.prod(p for _, p in parts)))
    return out


def _language(g: Grammar) -> Language:
    lang: Language = {}
    for string, prob in _derivations(g, g.root):
        lang[string] = lang.get(string, Fraction(0)) + prob
    return lang


def _prefix_masses(lang: Language) -> Language:
    """P(the string starts with p) for every prefix p of every string (including the whole string)."""
    masses: Language = {}
    for string, prob in lang.items():
        for k in range(len(string) + 1):
            masses[string[:k]] = masses.get(string[:k], Fraction(0)) + prob
    return masses


def _expected_rows(g: Grammar, lang: Language, masses: Language, string: tuple[int, ...]) -> list[list[Fraction]]:
    """The next-symbol distribution (EOS, terminals) after each prefix of ``string``, from the enumeration."""
    rows = []
    for k in range(len(string) + 1):
        prefix = string[:k]
        ends = [lang.get(prefix, Fraction(0))] + [masses.get(prefix + (v,), Fraction(0)) for v in g.terminals]
        rows.append([mass / masses[prefix] for mass in ends])
    return rows


@pytest.mark.parametrize("g", GRAMMARS, ids=lambda g: f"{g.name}-{hash(g) % 1000}")
def test_matches_enumerated_language(g: Grammar) -> None:
    lang = _language(g)
    assert sum(lang.values()) == 1
    masses = _prefix_masses(lang)
    strings = sorted(lang)
    for string in random.Random(0).sample(strings, min(len(strings), 40)):
        expected = _expected_rows(g, lang, masses, string)
        assert next_token_distributions(g, string, exact=True).tolist() == expected, string
        approx = next_token_distributions(g, string)
        np.testing.assert_allclose(approx, np.array(expected, dtype=float), rtol=0, atol=1e-12)


def test_ambiguous_grammar_sums_derivations() -> None:
    g = _ambiguous()
    strings = [s for s, _ in _derivations(g, g.root)]
    assert len(strings) > len(set(strings))  # the oracle above really had to sum derivations
    # "1 2": 10 -> 8 -> 7 -> 1 2 (1/3 * 1/2 * 1/2), 10 -> 8 -> 6 7 -> 1 2 (1/3 * 1/2 * 1/2 * 1/2), or
    # 10 -> 9 8 with 9 -> 6 -> 1 and 8 -> 7 -> 2 (1/3 * 1/4 * 1/4)
    assert _language(g)[(1, 2)] == Fraction(1, 12) + Fraction(1, 24) + Fraction(1, 48)


@pytest.mark.parametrize("name", ["cfg3b", "cfg3f"])
def test_published_sentence_is_consistent_with_judge(name: str) -> None:
    g = load_grammar(name)
    judge = Judge(g)
    tokens = sample_sentences(g, seed=5, start=0, count=1)[0].tokens
    dist = next_token_distributions(g, tokens)
    assert dist.shape == (len(tokens) + 1, len(g.terminals) + 1)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0, atol=1e-12)
    assert (dist[np.arange(len(tokens)), tokens] > 0).all()
    assert [bool(dist[k, 0] > 0) for k in range(len(tokens) + 1)] == [judge(tokens[:k]) for k in range(len(tokens) + 1)]
    for v in g.terminals:  # the last row's support is exactly the tokens that extend the sentence
        if dist[-1, v] > 0:
            assert next_token_distributions(g, [*tokens, v])[-2, v] == pytest.approx(dist[-1, v], rel=1e-12)
        else:
            with pytest.raises(ValueError, match=f"position {len(tokens)} cannot follow"):
                next_token_distributions(g, [*tokens, v])


def test_float_matches_exact_on_cfg3f_prefix() -> None:
    g = load_grammar("cfg3f")
    tokens = sample_sentences(g, seed=3, start=0, count=1)[0].tokens[:30]
    exact = next_token_distributions(g, tokens, exact=True)
    assert all(isinstance(x, Fraction) for x in exact.ravel())
    assert all(sum(row) == 1 for row in exact)
    np.testing.assert_allclose(next_token_distributions(g, tokens), exact.astype(float), rtol=1e-12, atol=1e-15)


def test_empty_prefix_is_the_first_token_distribution() -> None:
    g = _ambiguous()
    lang = _language(g)
    assert next_token_distributions(g, [], exact=True).tolist() == _expected_rows(g, lang, _prefix_masses(lang), ())


def test_invalid_tokens_raise_naming_the_position() -> None:
    g = _ambiguous()
    with pytest.raises(ValueError, match="token 3 at position 1 is not a terminal"):
        next_token_distributions(g, [1, 3])
    longest = max(_language(g), key=len)
    with pytest.raises(ValueError, match=f"at position {len(longest)} cannot follow"):
        next_token_distributions(g, [*longest, 1])
    with pytest.raises(ValueError, match="at position 2 cannot follow"):
        next_token_distributions(g, [2, 2, 2], exact=True)


def test_kl_matches_hand_computation() -> None:
    p_true = np.array([[0.5, 0.5, 0.0]])
    p_model = np.array([[0.25, 0.25, 0.5]])
    # eps = 0.1: smoothed truth (0.6, 0.6, 0.1) / 1.3, smoothed model (0.35, 0.35, 0.6) / 1.3; weights 0.5, 0.5, 0
    np.testing.assert_allclose(kl_per_position(p_true, p_model, eps=0.1), [math.log(0.6 / 0.35)], rtol=1e-12)


def test_kl_zero_for_truth_and_positive_otherwise() -> None:
    g = load_grammar("cfg3f")
    truth = next_token_distributions(g, sample_sentences(g, seed=1, start=0, count=1)[0].tokens)
    assert np.array_equal(kl_per_position(truth, truth), np.zeros(len(truth)))
    uniform = np.full_like(truth, 1 / truth.shape[1])
    assert (kl_per_position(truth, uniform) > 0).all()
    assert mean_kl(truth, uniform) == pytest.approx(kl_per_position(truth, uniform).mean())
    with pytest.raises(ValueError, match="shape"):
        kl_per_position(truth, uniform[:-1])


def test_module_does_not_import_torch() -> None:
    code = "import sys, physlm.worlds.cfg.dist; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
