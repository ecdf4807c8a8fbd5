"""Tests of physlm.worlds.cfg.implicit (SPEC 1.5, implicit CFGs): bags and their validation, emission, storage,
the membership judge against nltk's Earley parser on the grammar extended with preterminal rules
``t -> token``, and the next-token distribution against the token language enumerated from every derivation
and every emission of tiny grammars."""

from __future__ import annotations

import itertools
import math
import random
import subprocess
import sys
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import pytest
from nltk.grammar import CFG, Nonterminal, Production
from nltk.parse.earleychart import EarleyChartParser

from physlm.errors import DataError
from physlm.worlds.cfg.grammar import Grammar, Judge, layered_ids, load_grammar, random_grammar, sample_sentences
from physlm.worlds.cfg.dist import next_token_distributions
from physlm.worlds.cfg.implicit import (
    Bags,
    BagsError,
    ImplicitJudge,
    bags_from_json,
    bags_to_json,
    emit,
    emit_sentences,
    load_bags,
    make_bags,
    next_token_distributions_implicit,
    save_bags,
)

# 4 rule levels, so Judge both tabulates (3 levels) and expands the root; strings of 2..30 terminals
SMALL = random_grammar(seed=0, symbols_per_level=[1, 3, 3, 3, 3], rules_per_symbol=(1, 2), rule_length=(1, 3),
                       name="small")


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert message and "\n" not in message
    return message


# ------------------------------------------------------------------------------------------- bags


def test_make_bags_disjoint() -> None:
    bags = make_bags(3, 4, overlap=0, seed=1)
    assert bags.vocab_size == 12 and bags.num_terminals == 3 and bags.disjoint
    assert sorted(itertools.chain.from_iterable(bags.bags)) == list(range(1, 13))
    assert all(len(bag) == 4 and list(bag) == sorted(bag) for bag in bags.bags)
    assert all(bags.terminals_of(v) == {t} for t, bag in enumerate(bags.bags, 1) for v in bag)
    assert bags.terminals_of(0) == bags.terminals_of(13) == frozenset()
    assert make_bags(3, 4, overlap=0, seed=1) == bags
    assert make_bags(3, 4, overlap=0, seed=2) != bags  # the seed permutes the token ids


@pytest.mark.parametrize(("terminals", "size", "overlap"), [(3, 4, 1), (5, 4, 2), (4, 5, 2), (3, 2, 1)])
def test_make_bags_overlap_shares_k_tokens_with_the_next_bag(terminals: int, size: int, overlap: int) -> None:
    bags = make_bags(terminals, size, overlap, seed=7)
    assert bags.vocab_size == terminals * (size - overlap) and not bags.disjoint
    assert all(len(bag) == size for bag in bags.bags)
    for t in range(terminals):
        for u in range(t + 1, terminals):
            shared = len(set(bags.bags[t]) & set(bags.bags[u]))
            neighbours = u == t + 1 or (t == 0 and u == terminals - 1)
            assert shared == (overlap if neighbours else 0), (t + 1, u + 1)
    assert max(len(bags.terminals_of(v)) for v in range(1, bags.vocab_size + 1)) == 2


def test_make_bags_two_terminals_share_both_ways() -> None:
    bags = make_bags(2, 5, 2, seed=0)  # each is the other's next: 2 * 2 shared tokens, 1 private each
    assert len(set(bags.bags[0]) & set(bags.bags[1])) == 4 and bags.vocab_size == 6


@pytest.mark.parametrize(("args", "match"), [
    ((0, 3, 0), "num_terminals=0"),
    ((3, 0, 0), "bag_size=0"),
    ((3, 3, -1), "overlap=-1 must be >= 0"),
    ((1, 4, 1), "needs at least 2 terminals"),
    ((3, 4, 3), "at most bag_size/2"),
    ((3, 2.5, 0), "bag_size=2.5 must be an integer"),
])
def test_make_bags_rejects_impossible_settings(args: tuple, match: str) -> None:
    with pytest.raises(BagsError, match=match) as err:
        make_bags(*args)
    _one_line(err)


@pytest.mark.parametrize(("bags", "match"), [
    ((), "non-empty list of bags"),
    ("12", "non-empty list of bags"),
    (((1, 2), ()), "bag of terminal 2 is empty"),
    (((1, 2), 3), "bag of terminal 2 must be a list"),
    (((1, 2, 1), (3,)), r"bag of terminal 1 repeats token\(s\) \[1\]"),
    (((1, 2), (4,)), r"tokens \[3\] of the vocabulary 1..4 are in no bag"),
    (((1, 0),), "token 0 is not an integer id >= 1"),
    (((1, True),), "token True is not an integer id"),
    (((1, "2"),), "token '2' is not an integer id"),
])
def test_bags_validation(bags: object, match: str) -> None:
    with pytest.raises(BagsError, match=match) as err:
        Bags(bags)  # type: ignore[arg-type]
    _one_line(err)


def test_bags_accessors() -> None:
    bags = Bags([[1, 2], [2, 3, 4]])
    assert bags.bags == ((1, 2), (2, 3, 4)) and bags.vocab_size == 4 and not bags.disjoint
    assert bags.bag(2) == (2, 3, 4) and bags.terminals_of(2) == {1, 2} and bags.terminals_of(4) == {2}
    with pytest.raises(BagsError, match="terminal 3 is not in 1..2"):
        bags.bag(3)
    assert hash(bags) == hash(Bags(((1, 2), (2, 3, 4))))


# --------------------------------------------------------------------------------------- emission


def test_emission_is_deterministic_and_independent_of_chunking() -> None:
    bags = make_bags(3, 4, 1, seed=0)
    terminals = [s.tokens for s in sample_sentences(SMALL, seed=2, start=0, count=12)]
    whole = emit_sentences(bags, terminals, seed=9, start=0)
    assert whole == emit_sentences(bags, terminals, seed=9, start=0)
    assert whole == emit_sentences(bags, terminals[:5], 9, 0) + emit_sentences(bags, terminals[5:], 9, 5)
    assert emit_sentences(bags, terminals[7:8], 9, 7) == whole[7:8]
    assert whole != emit_sentences(bags, terminals, seed=10, start=0)
    for tokens, terms in zip(whole, terminals):
        assert len(tokens) == len(terms) and all(v in bags.bag(t) for v, t in zip(tokens, terms))


def test_disjoint_emission_maps_back_to_the_terminals() -> None:
    bags = make_bags(3, 5, 0, seed=3)
    terminals = [s.tokens for s in sample_sentences(SMALL, seed=1, start=0, count=20)]
    emitted = emit_sentences(bags, terminals, seed=0, start=0)
    back = [[next(iter(bags.terminals_of(v))) for v in tokens] for tokens in emitted]
    assert back == terminals
    drawn = emit(bags, [1] * 400, random.Random(0))  # uniform over the bag: every member shows up
    assert set(drawn) == set(bags.bag(1)) and max(drawn.count(v) for v in set(drawn)) < 120


def test_emit_rejects_bad_terminals() -> None:
    bags = make_bags(3, 2, 0, seed=0)
    for bad in (0, 4, 2.0):
        with pytest.raises(BagsError, match="at position 1 is not in 1..3") as err:
            emit(bags, [1, bad, 2], random.Random(0))  # type: ignore[list-item]
        _one_line(err)


# ---------------------------------------------------------------------------------------- storage


def test_json_round_trip(tmp_path) -> None:
    bags = make_bags(4, 3, 1, seed=5)
    assert bags_from_json(bags_to_json(bags)) == bags
    save_bags(bags, tmp_path / "bags.json")
    assert load_bags(tmp_path / "bags.json") == bags


@pytest.mark.parametrize(("text", "match"), [
    ("{", "not valid JSON"),
    ("[[1, 2]]", 'expected a JSON object with "kind"'),
    ('{"kind": "other", "vocab_size": 2, "bags": [[1, 2]]}', "expected a JSON object"),
    ('{"kind": "physlm.implicit_bags", "bags": [[1, 2]]}', "expected exactly the keys"),
    ('{"kind": "physlm.implicit_bags", "vocab_size": 2, "bags": [1, 2]}', "must be a list of lists"),
    ('{"kind": "physlm.implicit_bags", "vocab_size": 2, "bags": [[1, 2], []]}', "bag of terminal 2 is empty"),
    ('{"kind": "physlm.implicit_bags", "vocab_size": 3, "bags": [[1, 2]]}', "vocab_size 3 does not match"),
    ('{"kind": "physlm.implicit_bags", "vocab_size": 2, "bags": [[1, 2.5]]}', "token 2.5 is not an integer"),
])
def test_malformed_json_is_a_one_line_data_error(text: str, match: str) -> None:
    with pytest.raises(DataError, match=match) as err:
        bags_from_json(text)
    assert _one_line(err).startswith("bags JSON: ")


def test_load_bags_names_the_file(tmp_path) -> None:
    with pytest.raises(DataError, match="cannot read bags file .*missing.json") as err:
        load_bags(tmp_path / "missing.json")
    _one_line(err)
    (tmp_path / "bad.json").write_text("not json\n")
    with pytest.raises(DataError, match="bags file .*bad.json.*: not valid JSON") as err:
        load_bags(tmp_path / "bad.json")
    _one_line(err)


# ------------------------------------------------------------------------------------------ judge


class ImplicitNltkOracle:
    """Membership by nltk's Earley parser on the grammar's rules plus a preterminal rule ``T<t> -> "w<v>"``
    for every token v in the bag of terminal t: a complete root edge over the whole input."""

    def __init__(self, g: Grammar, bags: Sequence[Sequence[int]]) -> None:
        productions = [Production(Nonterminal(f"N{lhs}"), [Nonterminal(f"N{s}" if s in g.rules else f"T{s}")
                                                           for s in alt])
                       for lhs, alts in g.rules.items() for alt in alts]
        productions += [Production(Nonterminal(f"T{t}"), [f"w{v}"]) for t, bag in enumerate(bags, 1) for v in bag]
        self.root = Nonterminal(f"N{g.root}")
        self.parser = EarleyChartParser(CFG(self.root, productions), max_time=None)
        self.words = {f"w{v}" for bag in bags for v in bag}

    def __call__(self, tokens: Sequence[int]) -> bool:
        words = [f"w{v}" for v in tokens]
        if not words or not self.words.issuperset(words):  # nltk refuses words outside its grammar
            return False
        chart = self.parser.chart_parse(words)
        return any(True for _ in chart.select(start=0, end=len(words), is_complete=True, lhs=self.root))


def _flip(tokens: Sequence[int], vocab: int, rng: random.Random) -> list[int]:
    out = list(tokens)
    i = rng.randrange(len(out))
    out[i] = rng.choice([v for v in range(1, vocab + 1) if v != out[i]])
    return out


JUDGE_CASES = [  # grammar, (terminals, bag size, overlap), sampled sentences (nltk takes ~0.1 s on a cfg3b one)
    ("small", (3, 2, 0), 50),
    ("small", (3, 3, 1), 50),
    ("small", (3, 2, 1), 40),  # every token ambiguous between two terminals
    ("cfg3b", (3, 4, 1), 6),
]


@pytest.mark.parametrize(("name", "setting", "count"), JUDGE_CASES)
def test_implicit_judge_agrees_with_nltk(name: str, setting: tuple[int, int, int], count: int) -> None:
    g = SMALL if name == "small" else load_grammar(name)
    bags = make_bags(*setting, seed=11)
    judge, oracle = ImplicitJudge(g, bags), ImplicitNltkOracle(g, bags.bags)
    rng = random.Random(f"implicit-oracle:{name}:{setting}")
    terminals = [s.tokens for s in sample_sentences(g, seed=13, start=0, count=count)]
    sampled = emit_sentences(bags, terminals, seed=17, start=0)
    for tokens in sampled:
        assert judge(tokens) and oracle(tokens)
    flipped = [_flip(t, bags.vocab_size, rng) for t in sampled]
    truncated = [t[: rng.randrange(len(t))] for t in sampled[: count // 2]]
    lengths = [len(t) for t in sampled]
    randoms = [[rng.randint(1, bags.vocab_size) for _ in range(rng.choice(lengths))] for _ in range(count // 2)]
    for strings in (flipped, truncated, randoms):
        verdicts = [oracle(t) for t in strings]
        assert [judge(t) for t in strings] == verdicts
    if name == "small":  # some flips stay in the language and most leave it: the agreement is not vacuous
        verdicts = [oracle(t) for t in flipped]
        assert 0 < sum(verdicts) < len(verdicts)
    assert not judge([]) and not judge([*sampled[0][:-1], bags.vocab_size + 1]) and not judge([0])


def test_disjoint_judge_equals_plain_judge_on_mapped_terminals() -> None:
    bags = make_bags(3, 3, 0, seed=2)
    judge, plain = ImplicitJudge(SMALL, bags), Judge(SMALL)
    rng = random.Random(0)
    sampled = emit_sentences(bags, [s.tokens for s in sample_sentences(SMALL, 3, 0, 60)], seed=1, start=0)
    for tokens in sampled + [_flip(t, bags.vocab_size, rng) for t in sampled]:
        assert judge(tokens) == plain([next(iter(bags.terminals_of(v))) for v in tokens])


def test_accepts_any_is_the_or_over_terminal_choices() -> None:
    judge = Judge(SMALL)
    rng = random.Random(1)
    strings = [s.tokens for s in sample_sentences(SMALL, 4, 0, 40)]
    verdicts = []
    for tokens in strings:  # up to 6 positions get a second option (64 choices); some positions a wrong one
        widened = set(rng.sample(range(len(tokens)), min(6, len(tokens))))
        options = [sorted({t, rng.choice(SMALL.terminals)}) if i in widened else
                   [t if rng.random() < 0.9 else rng.choice(SMALL.terminals)] for i, t in enumerate(tokens)]
        expected = any(judge(list(choice)) for choice in itertools.product(*options))
        assert judge.accepts_any(options) == expected
        verdicts.append(expected)
    assert 0 < sum(verdicts) < len(verdicts)
    tokens = strings[0]
    assert judge.accepts_any([[t] for t in tokens]) and judge.accepts_any([[t, 99] for t in tokens])
    assert not judge.accepts_any([[t] for t in tokens] + [[]]) and not judge.accepts_any([[99]] * len(tokens))
    assert not judge.accepts_any([])


def test_judge_rejects_bags_of_the_wrong_size() -> None:
    with pytest.raises(BagsError, match="2 bags given for the 3 terminals of grammar 'small'") as err:
        ImplicitJudge(SMALL, make_bags(2, 2, 0, seed=0))
    _one_line(err)


# ----------------------------------------------------------------------------------- distribution

Language = dict[tuple[int, ...], Fraction]


def _tiny_ambiguous() -> Grammar:
    """Terminals 1, 2; "1 2" is derived in several ways (root 10, level 1: 8, 9, level 2: 6, 7)."""
    rules = {10: ((8, 9), (9,)), 8: ((6, 7), (6,)), 9: ((7,), (6, 6)), 6: ((1,), (2, 1)), 7: ((1, 2), (2,))}
    return Grammar(name="tiny", levels=layered_ids([1, 2, 2, 2]), rules=rules)


DIST_CASES = [
    (_tiny_ambiguous(), Bags(((1, 2), (2, 3, 4)))),  # uneven bags sharing token 2
    (_tiny_ambiguous(), Bags(((1,), (1, 2)))),
    (random_grammar(seed=1, symbols_per_level=[1, 2, 2, 3], rules_per_symbol=(1, 2), rule_length=(1, 2)),
     make_bags(3, 2, 1, seed=0)),  # every token from two terminals
    (random_grammar(seed=2, symbols_per_level=[1, 2, 2, 2, 2], rules_per_symbol=(1, 2), rule_length=(1, 2)),
     make_bags(2, 2, 0, seed=0)),
]


def _terminal_language(g: Grammar) -> Language:
    """Every terminal string with its probability: the sum over its derivations of the product of 1/#rules."""
    def derive(sym: int) -> list[tuple[tuple[int, ...], Fraction]]:
        if sym in g.terminals:
            return [((sym,), Fraction(1))]
        out = []
        for alt in g.rules[sym]:
            for parts in itertools.product(*(derive(child) for child in alt)):
                string = tuple(itertools.chain.from_iterable(s for s, _ in parts))
                out.append((string, Fraction(1, len(g.rules[sym])) * math.prod(p for _, p in parts)))
        return out

    lang: Language = {}
    for string, prob in derive(g.root):
        lang[string] = lang.get(string, Fraction(0)) + prob
    return lang


def _token_language(lang: Language, bags: Bags) -> Language:
    """Every token string with its probability: each terminal string emits every choice of bag members."""
    tokens: Language = {}
    for string, prob in lang.items():
        for choice in itertools.product(*(bags.bag(t) for t in string)):
            weight = prob * math.prod(Fraction(1, len(bags.bag(t))) for t in string)
            tokens[choice] = tokens.get(choice, Fraction(0)) + weight
    return tokens


@pytest.mark.parametrize(("g", "bags"), DIST_CASES, ids=lambda x: getattr(x, "name", "bags"))
def test_distribution_matches_enumerated_token_language(g: Grammar, bags: Bags) -> None:
    lang = _token_language(_terminal_language(g), bags)
    assert sum(lang.values()) == 1
    masses: Language = {}
    for string, prob in lang.items():
        for k in range(len(string) + 1):
            masses[string[:k]] = masses.get(string[:k], Fraction(0)) + prob
    vocab = range(1, bags.vocab_size + 1)
    strings = sorted(lang)
    for string in [*random.Random(0).sample(strings, min(len(strings), 25)), ()]:
        expected = [[lang.get(string[:k], Fraction(0)) / masses[string[:k]]]
                    + [masses.get(string[:k] + (v,), Fraction(0)) / masses[string[:k]] for v in vocab]
                    for k in range(len(string) + 1)]
        assert next_token_distributions_implicit(g, bags, string, exact=True).tolist() == expected, string
        approx = next_token_distributions_implicit(g, bags, string)
        np.testing.assert_allclose(approx, np.array(expected, dtype=float), rtol=0, atol=1e-12)


def test_published_distribution_with_disjoint_bags_is_the_plain_one_spread_over_each_bag() -> None:
    g, bags = load_grammar("cfg3b"), make_bags(3, 4, 0, seed=1)
    terminals = sample_sentences(g, seed=2, start=0, count=1)[0].tokens
    tokens = emit_sentences(bags, [terminals], seed=0, start=0)[0]
    plain = next_token_distributions(g, terminals)
    implicit = next_token_distributions_implicit(g, bags, tokens)
    assert implicit.shape == (len(tokens) + 1, 13)
    owner = [0] + [next(iter(bags.terminals_of(v))) for v in range(1, 13)]
    np.testing.assert_allclose(implicit[:, 0], plain[:, 0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(implicit[:, 1:], plain[:, owner[1:]] / 4, rtol=1e-12, atol=1e-15)


def test_published_distribution_with_overlap_is_consistent_with_the_judge() -> None:
    g, bags = load_grammar("cfg3b"), make_bags(3, 4, 1, seed=1)
    judge = ImplicitJudge(g, bags)
    tokens = emit_sentences(bags, [sample_sentences(g, seed=3, start=0, count=1)[0].tokens], seed=0, start=0)[0]
    dist = next_token_distributions_implicit(g, bags, tokens)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0, atol=1e-12)
    assert (dist[np.arange(len(tokens)), tokens] > 0).all()
    assert [bool(dist[k, 0] > 0) for k in range(len(tokens) + 1)] == [judge(tokens[:k]) for k in range(len(tokens) + 1)]


def test_distribution_rejects_bad_tokens_and_bags() -> None:
    g, bags = _tiny_ambiguous(), Bags(((1, 2), (2, 3, 4)))
    with pytest.raises(ValueError, match="token 5 at position 1 is not a vocabulary token .* \\(1..4\\)"):
        next_token_distributions_implicit(g, bags, [1, 5])
    longest = max(_terminal_language(g), key=len)
    with pytest.raises(ValueError, match=f"at position {len(longest)} cannot follow"):
        next_token_distributions_implicit(g, bags, [2] * (len(longest) + 1))
    with pytest.raises(BagsError, match="3 bags given for the 2 terminals"):
        next_token_distributions_implicit(g, make_bags(3, 1, 0, seed=0), [1])


def test_module_does_not_import_torch() -> None:
    code = "import sys, physlm.worlds.cfg.implicit; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
