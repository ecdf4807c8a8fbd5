"""Tests of physlm.worlds.cfg.parse (one canonical parse of a cfg3 string) and of
physlm.worlds.cfg.diversity.subtree_diversity_compare (per-NT subtree diversity of parsed strings).

The parser is checked against ``Judge`` for membership (sampled strings, single-token flips, truncations,
deletions, splices, random strings, bad inputs); every returned labelling is checked to be a valid derivation
by rebuilding the tree level by level here, independently of the parser; on a hand-built grammar whose
unambiguity is verified by enumerating its derivations the labels equal the sampler's; on a tiny ambiguous
grammar the documented tie-breaking rule (first rule, leftmost-shortest split) is checked by hand. The
diversity comparison is checked on cases with known answers: the same distribution on both sides (agreement
within the estimators' noise) and a model repeating one sentence (collapsed subtree entropy)."""

from __future__ import annotations

import itertools
import json
import math
import random
from collections import Counter

import pytest

from physlm.worlds.cfg.diversity import (
    collision_entropy,
    subtree_diversity_compare,
    subtree_samples,
)
from physlm.worlds.cfg.grammar import (
    Grammar,
    Judge,
    Sentence,
    load_grammar,
    random_grammar,
    sample_sentences,
)
from physlm.worlds.cfg.parse import Parser, parse, parse_many

# ----------------------------------------------------------------------------------------- helpers


def level_nodes(sentence: Sentence, level: int) -> list[tuple[int, int, int]]:
    """(symbol, start, end) of the level-``level`` nodes read off the labels; asserts the labels are well formed."""
    ancestors, boundaries = sentence.ancestors[level - 1], sentence.boundaries[level - 1]
    n = len(sentence.tokens)
    assert len(ancestors) == len(boundaries) == n
    nodes, start = [], 0
    for i in range(n):
        assert ancestors[i] == ancestors[start], f"level {level}: label changes inside a subtree at {i}"
        if boundaries[i]:
            nodes.append((ancestors[i], start, i + 1))
            start = i + 1
    assert start == n, f"level {level}: the last token does not close a subtree"
    return nodes


def assert_valid_derivation(g: Grammar, sentence: Sentence, tokens: list[int]) -> None:
    """Rebuild the tree from the labels and check every node against the rules (independent of the parser)."""
    assert list(sentence.tokens) == list(tokens)
    n = len(tokens)
    assert len(sentence.ancestors) == len(sentence.boundaries) == g.depth - 1
    rows = [[(g.root, 0, n)]]
    rows += [level_nodes(sentence, level) for level in range(1, g.depth)]
    rows += [[(t, i, i + 1) for i, t in enumerate(tokens)]]  # the leaves are the tokens
    for level in range(g.depth):
        children = iter(rows[level + 1])
        for sym, start, end in rows[level]:
            assert sym in g.levels[level], f"{sym} is not a level-{level} symbol"
            kids, at = [], start
            while at < end:
                kid_sym, kid_start, kid_end = next(children)
                assert kid_start == at, "child spans do not tile their parent"
                kids.append(kid_sym)
                at = kid_end
            assert at == end, f"a level-{level + 1} subtree crosses the end of its parent {sym}[{start}:{end}]"
            assert tuple(kids) in g.rules[sym], f"{sym} -> {kids} is not a rule"
        assert next(children, None) is None


def derivation_counts(g: Grammar) -> Counter:
    """Number of distinct derivations (parse trees) of every string of a tiny grammar's language."""
    counts: dict[int, Counter] = {t: Counter({(t,): 1}) for t in g.terminals}
    for symbols in reversed(g.nonterminal_levels):
        for sym in symbols:
            total: Counter = Counter()
            for alt in g.rules[sym]:
                part: Counter = Counter({(): 1})
                for child in alt:
                    part = Counter({a + b: x * y for (a, x), (b, y) in itertools.product(part.items(),
                                                                                         counts[child].items())})
                total.update(part)
            counts[sym] = total
    return counts[g.root]


def perturbed(g: Grammar, sentences: list[Sentence], seed: int) -> list[list[int]]:
    """Single-token flips, truncations, deletions and splices of ``sentences``, plus random strings."""
    rng = random.Random(seed)
    out: list[list[int]] = []
    for s in sentences:
        tokens = list(s.tokens)
        for _ in range(3):
            flip = list(tokens)
            k = rng.randrange(len(flip))
            flip[k] = rng.choice([t for t in g.terminals if t != flip[k]])
            out.append(flip)
        out.append(tokens[: rng.randrange(1, len(tokens))])
        out.append(tokens[rng.randrange(1, len(tokens)):])
        gone = list(tokens)
        del gone[rng.randrange(len(gone))]
        out.append(gone)
        other = list(rng.choice(sentences).tokens)
        out.append(tokens[: len(tokens) // 2] + other[len(other) // 2:])
        out.append([rng.choice(g.terminals) for _ in range(len(tokens))])
    return out


# Unambiguous by construction: the level-2 yields {1, 23 | 31, 22} form a prefix-free code with disjoint
# symbol languages, and so do the level-1 rules over level-2 symbols {78, 877 | 77, 88}; so every string has
# one decoding per level (verified by enumeration in the test). Ids: terminals 1-3, NTs 7-8, 9-10, root 11.
TOY = Grammar(name="toy_unambiguous", levels=((11,), (9, 10), (7, 8), (1, 2, 3)), rules={
    11: ((9, 10), (10, 10, 9), (9, 9)),
    9: ((7, 8), (8, 7, 7)),
    10: ((7, 7), (8, 8)),
    7: ((1,), (2, 3)),
    8: ((3, 1), (2, 2)),
})

# Ambiguous on purpose, for the tie-breaking rule. Terminals 1-2, level-1 NTs 6-7, root 8.
AMBIGUOUS = Grammar(name="toy_ambiguous", levels=((8,), (6, 7), (1, 2)), rules={
    8: ((6, 7), (7, 6), (7, 7)),
    6: ((1,), (1, 1)),
    7: ((2,), (1, 2), (1,)),
})

RANDOM = random_grammar(seed=5, symbols_per_level=[1, 3, 3, 4, 3], rules_per_symbol=(2, 3), rule_length=(1, 3),
                        name="random_short_rules")


@pytest.fixture(scope="module")
def cfg3b() -> Grammar:
    return load_grammar("cfg3b")


@pytest.fixture(scope="module")
def cfg3f() -> Grammar:
    return load_grammar("cfg3f")


# ------------------------------------------------------------------------------------------- parser


@pytest.mark.parametrize("name", ["cfg3b", "cfg3f", "cfg3e1", "random"])
def test_parse_accepts_exactly_what_judge_accepts(name: str) -> None:
    g = RANDOM if name == "random" else load_grammar(name)
    judge, parser = Judge(g), Parser(g)
    sentences = sample_sentences(g, 11, 0, 12)
    accepted = 0
    for s in sentences:
        assert judge(s.tokens)
        found = parser(s.tokens)
        assert found is not None
        assert_valid_derivation(g, found, s.tokens)
    for tokens in perturbed(g, sentences, seed=3):
        found = parser(tokens)
        assert (found is not None) == judge(tokens), tokens
        assert parser.accepts(tokens) == judge(tokens)
        if found is not None:  # e.g. a flip that lands on another string of the language
            accepted += 1
            assert_valid_derivation(g, found, tokens)
    if name in ("cfg3f", "random"):
        assert accepted > 0  # the perturbations do land in these languages sometimes: those parses are checked


@pytest.mark.parametrize("sizes", [[1, 3], [1, 2, 3], [1, 2, 3, 2]])
def test_parse_matches_judge_on_every_short_string(sizes: list[int]) -> None:
    g = random_grammar(seed=1, symbols_per_level=sizes, rules_per_symbol=(2, 3), rule_length=(1, 3))
    judge, accepted = Judge(g), 0
    for length in range(1, 8):
        for tokens in itertools.product(g.terminals, repeat=length):
            found = parse(g, tokens)
            assert (found is not None) == judge(tokens), tokens
            if found is not None:
                accepted += 1
                assert_valid_derivation(g, found, list(tokens))
    assert accepted >= 2


def test_parse_rejects_bad_input(cfg3b: Grammar) -> None:
    good = list(sample_sentences(cfg3b, 0, 0, 1)[0].tokens)
    assert parse(cfg3b, []) is None
    assert parse(cfg3b, good[:-1] + [cfg3b.root]) is None  # an NT id is not a terminal
    assert parse(cfg3b, good[:-1] + [0]) is None
    assert parse(cfg3b, good + good) is None
    assert parse(cfg3b, tuple(good)) == parse(cfg3b, good)  # any sequence type
    np = pytest.importorskip("numpy")
    assert parse(cfg3b, np.array(good)) == parse(cfg3b, good)


def test_unambiguous_toy_parse_equals_sampler_labels() -> None:
    counts = derivation_counts(TOY)
    assert len(counts) > 100 and set(counts.values()) == {1}  # every string has exactly one parse tree
    judge = Judge(TOY)
    for s in sample_sentences(TOY, 2, 0, 300):
        assert parse(TOY, s.tokens) == s
    language = set(counts)
    for tokens in perturbed(TOY, sample_sentences(TOY, 3, 0, 40), seed=1):
        assert (parse(TOY, tokens) is not None) == (tuple(tokens) in language) == judge(tokens)


def test_ambiguous_toy_parse_follows_tie_breaking_rule() -> None:
    counts = derivation_counts(AMBIGUOUS)
    assert counts[(1, 1)] == 3 and counts[(1, 1, 2)] == 2  # really ambiguous
    expected = {
        (1, 1): ([6, 7], [1, 1]),  # all three root rules derive it: the first one, 8 -> 6 7
        (1, 2): ([6, 7], [1, 1]),
        (1, 1, 2): ([6, 7, 7], [1, 0, 1]),  # 6|7 splits 1|1 2 or 1 1|2: the shortest first child wins
        (2, 1): ([7, 6], [1, 1]),  # 8 -> 6 7 fails, 8 -> 7 6 and 8 -> 7 7 derive it: the first of those
        (2, 1, 2): ([7, 7, 7], [1, 0, 1]),  # only the third root rule
        (1, 1, 1): ([6, 6, 7], [0, 1, 1]),  # the shortest first child "1" leaves "1 1", which 7 cannot derive
    }
    for tokens, (ancestors, boundaries) in expected.items():
        found = parse(AMBIGUOUS, tokens)
        assert found == Sentence(tokens=list(tokens), ancestors=[ancestors], boundaries=[boundaries]), tokens
    assert parse(AMBIGUOUS, (2, 2, 2)) is None and parse(AMBIGUOUS, (1,)) is None
    judge = Judge(AMBIGUOUS)
    for length in range(1, 6):
        for tokens in itertools.product((1, 2), repeat=length):
            found = parse(AMBIGUOUS, tokens)
            assert (found is not None) == judge(tokens) == (tokens in counts)
            if found is not None:
                assert_valid_derivation(AMBIGUOUS, found, list(tokens))


def test_canonical_parse_is_deterministic_and_valid_on_ambiguous_cfg3f(cfg3f: Grammar) -> None:
    sentences = sample_sentences(cfg3f, 4, 0, 20)
    first = parse_many(cfg3f, [s.tokens for s in sentences])
    again = [Parser(cfg3f)(s.tokens) for s in sentences]
    assert first == again
    for s, found in zip(sentences, first):
        assert found is not None
        assert_valid_derivation(cfg3f, found, s.tokens)
    # cfg3f is ambiguous: the canonical parse differs from the sampler's tree on some strings
    assert any(found != s for s, found in zip(sentences, first))


def test_parse_finds_a_derivation_of_long_cfg3f_strings(cfg3f: Grammar) -> None:
    """Strings of 200-300 tokens (the paper's lengths) parse to a valid derivation; how fast is
    benchmarks/bench_judge.py's business (its Parser rows), not a unit test's."""
    sentences = [s for s in sample_sentences(cfg3f, 6, 0, 60) if 200 <= len(s.tokens) <= 300][:20]
    assert len(sentences) >= 10
    parser = Parser(cfg3f)
    for s in sentences:
        found = parser(s.tokens)
        assert found is not None
        assert_valid_derivation(cfg3f, found, s.tokens)


# ---------------------------------------------------------------------------------------- diversity


def test_subtree_diversity_same_distribution_agrees(cfg3b: Grammar) -> None:
    model = [s.tokens for s in sample_sentences(cfg3b, 21, 0, 150)]
    reference = [s.tokens for s in sample_sentences(cfg3b, 22, 0, 150)]
    out = subtree_diversity_compare(model + [None, [1, 2, 3], []], reference, cfg3b)
    assert json.loads(json.dumps(out, allow_nan=False)) == out  # JSON-ready
    assert (out["parsed"], out["unparsable"], out["reference"]) == (150, 3, 150)
    assert [k for k in out if k.startswith("level")] == [f"level {level}" for level in range(1, cfg3b.depth)]
    model_parsed, reference_parsed = parse_many(cfg3b, model), parse_many(cfg3b, reference)
    resolved = 0
    for level in range(1, cfg3b.depth):
        entry = out[f"level {level}"]
        ours, theirs = subtree_samples(model_parsed, level), subtree_samples(reference_parsed, level)
        assert entry["subtrees"] == {"model": sum(map(len, ours.values())), "grammar": sum(map(len, theirs.values()))}
        assert entry["model"]["n"] == entry["grammar"]["n"] == sum(
            min(len(ours.get(a, [])), len(theirs.get(a, []))) for a in set(ours) | set(theirs))
        for key, pair in entry["per_symbol"].items():
            sym = int(key)
            m = min(len(ours[sym]), len(theirs[sym]))  # equalised: the first m subtrees of each side
            a, b = collision_entropy(ours[sym][:m]), collision_entropy(theirs[sym][:m])
            assert set(pair["model"]) == {"n", "collisions", "renyi2_nats", "support", "is_lower_bound"}
            assert (pair["model"]["n"], pair["model"]["collisions"]) == (m, a.collisions)
            assert (pair["grammar"]["n"], pair["grammar"]["collisions"]) == (m, b.collisions)
            if a.is_lower_bound and b.is_lower_bound:  # same n, so the same birthday bound
                assert pair["model"]["renyi2_nats"] == pair["grammar"]["renyi2_nats"]
            elif a.is_lower_bound or b.is_lower_bound:  # one side saw no collision: the other saw few
                assert max(a.collisions, b.collisions) <= 5
            else:
                resolved += 1
                noise = math.hypot(a.renyi2_stderr, b.renyi2_stderr)
                assert abs(a.renyi2_nats - b.renyi2_nats) < 4 * noise + 1e-9, (level, sym)
    assert resolved >= 6


def test_subtree_diversity_collapses_for_a_repeated_sentence(cfg3b: Grammar) -> None:
    assert {len(alt) for alt in cfg3b.rules[cfg3b.root]} == {2}
    assert all(len(set(alt)) == 2 for alt in cfg3b.rules[cfg3b.root])  # level-1 symbols occur once per string
    one = sample_sentences(cfg3b, 30, 0, 1)[0].tokens
    reference = [s.tokens for s in sample_sentences(cfg3b, 31, 0, 60)]
    out = subtree_diversity_compare([one] * 60, reference, cfg3b, levels=[1, 2, 3])
    assert [k for k in out if k.startswith("level")] == ["level 1", "level 2", "level 3"]
    level1 = out["level 1"]["per_symbol"]
    assert level1
    for pair in level1.values():
        n = pair["model"]["n"]
        assert pair["model"]["collisions"] == math.comb(n, 2) and pair["model"]["renyi2_nats"] == 0
        assert pair["model"]["support"] == 1
        assert pair["grammar"]["renyi2_nats"] > 3  # the grammar's level-1 subtrees hardly ever repeat
    for level in (1, 2, 3):
        entry = out[f"level {level}"]
        assert entry["model"]["renyi2_nats"] < entry["grammar"]["renyi2_nats"] - 1


def test_subtree_diversity_compare_edge_cases(cfg3b: Grammar) -> None:
    reference = [s.tokens for s in sample_sentences(cfg3b, 40, 0, 5)]
    out = subtree_diversity_compare([None, [1, 1, 1]], reference, cfg3b, levels=[2])
    assert (out["parsed"], out["unparsable"]) == (0, 2)
    assert out["level 2"]["model"] is None and out["level 2"]["per_symbol"] == {}
    with pytest.raises(ValueError, match="level"):
        subtree_diversity_compare(reference, reference, cfg3b, levels=[cfg3b.depth])
    with pytest.raises(ValueError, match="reference string 1"):
        subtree_diversity_compare(reference, [reference[0], [1, 2]], cfg3b)
    labelled = sample_sentences(cfg3b, 40, 0, 5)  # Sentence objects are accepted as references (re-parsed)
    assert subtree_diversity_compare(reference, labelled, cfg3b) == subtree_diversity_compare(reference, reference,
                                                                                                cfg3b)
