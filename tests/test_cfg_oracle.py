"""Oracle test of physlm.worlds.cfg.grammar.Judge against nltk's chart parser.

nltk's Earley chart parser (the fastest of nltk's chart parsers on these grammars, see
benchmarks/bench_judge.py) decides membership by looking for a complete root edge over the whole input;
parse trees are never enumerated (cfg3f strings have ~10^166 derivations). Judge must agree on sampled
strings and on single-token perturbations of them, of which some stay in the language and most do not.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from nltk.grammar import CFG, Nonterminal, Production
from nltk.parse.earleychart import EarleyChartParser

from physlm.worlds.cfg.grammar import Grammar, Judge, load_grammar, sample_sentences


class NltkOracle:
    """Membership by nltk: is there a complete root edge spanning the whole input in the chart?"""

    def __init__(self, g: Grammar) -> None:
        def symbol(sym: int) -> Nonterminal | str:
            return Nonterminal(str(sym)) if sym in g.rules else str(sym)

        productions = [Production(symbol(lhs), [symbol(s) for s in alt]) for lhs, alts in g.rules.items()
                       for alt in alts]
        self.root = Nonterminal(str(g.root))
        self.parser = EarleyChartParser(CFG(self.root, productions), max_time=None)

    def __call__(self, tokens: Sequence[int]) -> bool:
        chart = self.parser.chart_parse([str(t) for t in tokens])
        return any(True for _ in chart.select(start=0, end=len(tokens), is_complete=True, lhs=self.root))


def flip_one(tokens: Sequence[int], terminals: Sequence[int], rng: random.Random) -> list[int]:
    out = list(tokens)
    i = rng.randrange(len(out))
    out[i] = rng.choice([t for t in terminals if t != out[i]])
    return out


@pytest.mark.parametrize(("name", "count"), [("cfg3f", 20), pytest.param("cfg3f", 200, marks=pytest.mark.slow),
                                           ("cfg3k", 10), ("cfg3e1", 25)])
def test_judge_agrees_with_nltk(name: str, count: int) -> None:
    g = load_grammar(name)
    judge, oracle = Judge(g), NltkOracle(g)
    rng = random.Random(f"oracle:{name}")
    sampled = [s.tokens for s in sample_sentences(g, seed=11, start=0, count=count)]
    perturbed = [flip_one(t, g.terminals, rng) for t in sampled]
    truncated = [t[:-1] for t in sampled[: count // 10]]
    for tokens in sampled:
        assert judge(tokens) and oracle(tokens)
    verdicts = [oracle(t) for t in perturbed]
    assert [judge(t) for t in perturbed] == verdicts
    assert [judge(t) for t in truncated] == [oracle(t) for t in truncated]
    if name == "cfg3f":  # both kinds of perturbation occur, so the agreement above is not vacuous
        assert 0 < sum(verdicts) < len(verdicts)
