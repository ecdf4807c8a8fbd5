"""Benchmark of physlm.worlds.cfg.grammar.Judge against nltk's chart parsers (SPEC 1.3's membership test).

Times both on the same cfg3f and cfg3k strings, valid and single-token perturbed, checks that they agree,
prints a markdown section (machine, command, table) ready to paste into benchmarks/RESULTS.md; --out also writes it to a file.

    python benchmarks/bench_judge.py [--n N] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import nltk
from nltk.grammar import CFG, Nonterminal, Production
from nltk.parse.chart import BottomUpLeftCornerChartParser, ChartParser, LeftCornerChartParser
from nltk.parse.earleychart import EarleyChartParser

from physlm.worlds.cfg.grammar import Grammar, Judge, load_grammar, sample_sentences
from physlm.worlds.cfg.parse import Parser

NLTK_PARSERS: dict[str, type[ChartParser]] = {
    "EarleyChartParser": EarleyChartParser,
    "LeftCornerChartParser": LeftCornerChartParser,
    "BottomUpLeftCornerChartParser": BottomUpLeftCornerChartParser,
}
ORACLE = "EarleyChartParser"  # fastest in the comparison below; tests/test_cfg_oracle.py uses it too


def nltk_membership(g: Grammar, parser_class: type[ChartParser]) -> Callable[[Sequence[int]], bool]:
    """Membership via a complete root edge over the whole input in nltk's chart (no tree enumeration)."""
    def symbol(sym: int) -> Nonterminal | str:
        return Nonterminal(str(sym)) if sym in g.rules else str(sym)

    root = Nonterminal(str(g.root))
    productions = [Production(symbol(lhs), [symbol(s) for s in alt]) for lhs, alts in g.rules.items() for alt in alts]
    parser = parser_class(CFG(root, productions), max_time=None)

    def member(tokens: Sequence[int]) -> bool:
        chart = parser.chart_parse([str(t) for t in tokens])
        return any(True for _ in chart.select(start=0, end=len(tokens), is_complete=True, lhs=root))

    return member


def strings(g: Grammar, n: int) -> dict[str, list[list[int]]]:
    """n sampled strings and one single-token perturbation of each."""
    rng = random.Random(f"bench:{g.name}")
    valid = [s.tokens for s in sample_sentences(g, seed=99, start=0, count=n)]
    perturbed = []
    for tokens in valid:
        out = list(tokens)
        i = rng.randrange(len(out))
        out[i] = rng.choice([t for t in g.terminals if t != out[i]])
        perturbed.append(out)
    return {"valid": valid, "perturbed": perturbed}


def timed(member: Callable[[Sequence[int]], bool], batch: list[list[int]]) -> float:
    """Mean seconds per string."""
    start = time.perf_counter()
    for tokens in batch:
        member(tokens)
    return (time.perf_counter() - start) / len(batch)


def race(judge: Callable[[Sequence[int]], bool], oracle: Callable[[Sequence[int]], bool], batch: list[list[int]],
         ) -> tuple[bool, list[bool], float, float]:
    """Agreement, nltk's verdicts and mean seconds per string of each; timed string by string, alternating,
    so that both see the same machine load."""
    agree, expected, nltk_s, judge_s = True, [], 0.0, 0.0
    for tokens in batch:
        start = time.perf_counter()
        verdict = oracle(tokens)
        middle = time.perf_counter()
        agree &= judge(tokens) == verdict
        judge_s += time.perf_counter() - middle
        nltk_s += middle - start
        expected.append(verdict)
    return agree, expected, nltk_s / len(batch), judge_s / len(batch)


def compare_judge(n: int) -> list[str]:
    rows = ["| grammar | strings | kind | mean length | in language | nltk Earley ms/string | Judge ms/string "
            "| speed-up | agree |", "|---|---|---|---|---|---|---|---|---|"]
    for name in ("cfg3f", "cfg3k"):
        g = load_grammar(name)
        judge, oracle = Judge(g), nltk_membership(g, NLTK_PARSERS[ORACLE])
        for kind, batch in strings(g, n).items():
            agree, expected, nltk_s, judge_s = race(judge, oracle, batch)
            rows.append(f"| {name} | {len(batch)} | {kind} | {statistics.mean(map(len, batch)):.0f} | {sum(expected)} "
                        f"| {nltk_s * 1e3:.1f} | {judge_s * 1e3:.3f} | {nltk_s / judge_s:.0f}x "
                        f"| {'yes' if agree else 'NO'} |")
            print(rows[-1], flush=True)
    return rows


def time_parser(n: int) -> list[str]:
    """`physlm.worlds.cfg.parse.Parser` (a whole derivation, which the probes' labels of parsed text need) on
    sampled cfg3f strings of the paper's lengths (200-300 tokens)."""
    g = load_grammar("cfg3f")
    batch = [s.tokens for s in sample_sentences(g, 6, 0, 6 * n) if 200 <= len(s.tokens) <= 300][:n]
    parse = Parser(g)
    seconds = timed(lambda tokens: parse(tokens) is not None, batch)
    return ["| parser | cfg3f strings | mean length | ms/string |", "|---|---|---|---|",
            f"| Parser (derivation) | {len(batch)} | {statistics.mean(map(len, batch)):.0f} | {seconds * 1e3:.1f} |"]


def compare_nltk_parsers(n: int) -> list[str]:
    g = load_grammar("cfg3f")
    batch = [t for kind in strings(g, n).values() for t in kind]
    rows = ["| nltk parser | cfg3f strings | ms/string |", "|---|---|---|"]
    for label, parser_class in NLTK_PARSERS.items():
        seconds = timed(nltk_membership(g, parser_class), batch)
        rows.append(f"| {label} | {len(batch)} | {seconds * 1e3:.1f} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30, help="sampled strings per grammar (plus as many perturbed)")
    parser.add_argument("--out", type=Path, default=None, help="also write the section to this file")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    parsers = compare_nltk_parsers(min(args.n, 10))
    judge = compare_judge(args.n)
    derivations = time_parser(min(args.n, 20))
    section = [
        "## CFG membership judge vs nltk",
        "",
        f"Date {datetime.date.today().isoformat()}; machine {platform.platform()} ({platform.machine()}, "
        f"{os.cpu_count()} CPUs, 1-min load average {load:.1f} at start); Python {platform.python_version()}; "
        f"nltk {nltk.__version__}. Command: `python benchmarks/bench_judge.py --n {args.n}`.",
        "",
        "Same strings for both: sampled sentences and one single-token flip of each. nltk decides membership",
        "from its chart (a complete root edge over the input); Judge is `physlm.worlds.cfg.grammar.Judge`",
        "(timed string by string, alternating, so both see the same load). \"in language\" counts the strings",
        "nltk accepts; \"agree\" says whether Judge gave the same verdict on every string.",
        "",
        *judge,
        "",
        f"nltk's chart parsers on the same kind of cfg3f strings ({ORACLE} is the oracle above and in",
        "tests/test_cfg_oracle.py):",
        "",
        *parsers,
        "",
        "physlm's full parser (a derivation, not only membership) on cfg3f strings of 200-300 tokens:",
        "",
        *derivations,
        "",
    ]
    print("\n".join(section))
    if args.out is not None:
        args.out.write_text("\n".join(section), encoding="utf-8")
    if any(row.endswith("| NO |") for row in judge):
        sys.exit("Judge and nltk disagree on some string")


if __name__ == "__main__":
    main()
