"""The cfg3 world of "Physics of Language Models" Part 1: layered context-free grammars.

Reproduces SPEC section 1.1: the nine published rule tables (cfg3b/i/h/g/f/e1/e2 and Part 4.1's cfg3j/k,
carried as package data in ``physlm/worlds/cfg/grammars/``), the random-grammar builder with the official knobs, top-down
sampling with uniform rule choice and per-token parse-tree labels (NT ancestor and NT boundary per level),
and an exact membership judge.

A grammar is *layered*: level 0 holds the root, levels 1..D-1 non-terminals (NTs), level D the terminals;
every rule of a level-l NT is a sequence of level-(l+1) symbols. Symbol ids follow the official configs:
terminals are 1..V, V+1..V+3 are reserved (EOS, MASK, SEP) and the NT levels get consecutive ids bottom-up
from V+4 (cfg3f: 7..9 above the terminals, ..., root 22). Symbols that no derivation reaches are allowed:
the published cfg3e1 has 13 of them.

Oracles: ``tests/test_cfg_oracle.py`` checks ``Judge`` against nltk's chart parser on sampled and perturbed
cfg3f strings; ``tests/test_cfg.py`` checks it against the enumerated language of a tiny grammar, and checks
the grammars against the SPEC's statistics and the sampler's labels against the rules.

This module never imports torch.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from physlm.errors import PhyslmError

__all__ = [
    "GrammarError",
    "Grammar",
    "Sentence",
    "Judge",
    "published_grammars",
    "load_grammar",
    "parse_grammar",
    "format_grammar",
    "random_grammar",
    "sample_sentence",
    "sample_sentences",
]

PUBLISHED = ("cfg3b", "cfg3i", "cfg3h", "cfg3g", "cfg3f", "cfg3e1", "cfg3e2", "cfg3j", "cfg3k")
RESERVED_IDS = 3  # EOS, MASK, SEP sit between the terminals and the first NT id

_HEADER = re.compile(r"symbols per level[^\[]*\[([^\]]*)\]")


class GrammarError(PhyslmError, ValueError):
    """A grammar file, name or builder setting is invalid; the message is one line naming what and where."""


# --------------------------------------------------------------------------------------------- grammar


def layered_ids(sizes: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """Symbol ids per level (root first) for level sizes ``sizes`` (root first, terminals last)."""
    vocab = sizes[-1]
    levels: list[tuple[int, ...]] = [tuple(range(1, vocab + 1))]
    next_id = vocab + 1 + RESERVED_IDS
    for size in reversed(sizes[:-1]):
        levels.append(tuple(range(next_id, next_id + size)))
        next_id += size
    return tuple(reversed(levels))


def _rule_problem(levels: Sequence[Sequence[int]], level: int, lhs: int, alt: Sequence[int]) -> str | None:
    """Why ``lhs -> alt`` is not a valid rule for a level-``level`` NT, or None if it is."""
    if not alt:
        return f"empty alternative for NT {lhs}"
    allowed = levels[level + 1]
    for sym in alt:
        if sym not in allowed:
            return (f"symbol {sym} in a rule of NT {lhs} (level {level}) is not a level-{level + 1} symbol "
                    f"({allowed[0]}..{allowed[-1]})")
    return None


@dataclass(frozen=True)
class Grammar:
    """A layered CFG. ``levels[l]`` are the level-l symbol ids; ``rules[A]`` the alternatives of NT A."""

    name: str
    levels: tuple[tuple[int, ...], ...]
    rules: Mapping[int, tuple[tuple[int, ...], ...]]

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(tuple(level) for level in self.levels))
        frozen = {int(a): tuple(tuple(alt) for alt in alts) for a, alts in self.rules.items()}
        object.__setattr__(self, "rules", MappingProxyType(frozen))
        self._validate()

    def _validate(self) -> None:
        where = f"grammar {self.name!r}"
        sizes = [len(level) for level in self.levels]
        if len(sizes) < 2 or sizes[0] != 1 or min(sizes) < 1:
            raise GrammarError(f"{where}: levels must be a single root, then non-empty levels; sizes {sizes}")
        if self.levels != layered_ids(sizes):
            raise GrammarError(f"{where}: symbol ids must be terminals 1..V and NT levels consecutive bottom-up "
                               f"from V+{RESERVED_IDS + 1}, i.e. {layered_ids(sizes)}")
        for level, symbols in enumerate(self.levels[:-1]):
            for lhs in symbols:
                if not self.rules.get(lhs):
                    raise GrammarError(f"{where}: NT {lhs} (level {level}) has no rules")
                for alt in self.rules[lhs]:
                    if problem := _rule_problem(self.levels, level, lhs, alt):
                        raise GrammarError(f"{where}: {problem}")
        extra = set(self.rules) - set(itertools.chain.from_iterable(self.levels[:-1]))
        if extra:
            raise GrammarError(f"{where}: rules given for symbols that are not NTs: {sorted(extra)}")

    def __hash__(self) -> int:
        return hash((self.name, self.levels, tuple(sorted(self.rules.items()))))

    def __reduce__(self) -> tuple[type[Grammar], tuple[str, tuple[tuple[int, ...], ...], dict]]:
        return Grammar, (self.name, self.levels, dict(self.rules))  # picklable for worker processes

    @property
    def depth(self) -> int:
        """Number of rule levels D (levels 0..D-1 hold NTs, level D the terminals)."""
        return len(self.levels) - 1

    @property
    def root(self) -> int:
        return self.levels[0][0]

    @property
    def terminals(self) -> tuple[int, ...]:
        return self.levels[-1]

    @property
    def nonterminal_levels(self) -> tuple[tuple[int, ...], ...]:
        """The NT ids per level, root level first."""
        return self.levels[:-1]

    @property
    def num_rules(self) -> int:
        return sum(len(alts) for alts in self.rules.values())


# --------------------------------------------------------------------------------------- text format


def published_grammars() -> tuple[str, ...]:
    """Names of the rule tables carried as package data, in the SPEC's order."""
    return PUBLISHED


def load_grammar(name_or_path: str) -> Grammar:
    """A published grammar by name (``"cfg3f"``) or a grammar file by path."""
    if name_or_path in PUBLISHED:
        text = resources.files("physlm.worlds.cfg").joinpath("grammars", f"{name_or_path}.txt").read_text(encoding="utf-8")
        return parse_grammar(text, name_or_path)
    path = Path(name_or_path)
    if path.suffix == ".txt" or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise GrammarError(f"cannot read grammar file {str(path)!r}: {err}") from err
        try:
            return parse_grammar(text, path.stem)
        except GrammarError as err:
            raise GrammarError(f"grammar file {str(path)!r}: {err}") from None
    raise GrammarError(f"unknown grammar {name_or_path!r}; published: {', '.join(PUBLISHED)} (or a path to a .txt file)")


def _ints(words: Sequence[str], where: str) -> tuple[int, ...]:
    out = []
    for word in words:
        try:
            out.append(int(word))
        except ValueError:
            raise GrammarError(f"{where}: {word!r} is not an integer symbol id") from None
    return tuple(out)


def _header_sizes(lines: Sequence[str], name: str) -> list[int]:
    for number, line in enumerate(lines, 1):
        match = _HEADER.search(line) if line.startswith("#") else None
        if match:
            return list(_ints(match.group(1).replace(",", " ").split(), f"{name}:{number}"))
    raise GrammarError(f"{name}: missing header line '# ... symbols per level (root first, terminals last) "
                       f"[1, 3, ..., V]'")


def parse_grammar(text: str, name: str) -> Grammar:
    """Parse the text format: a header comment giving the level sizes, then ``NT -> A B | C D E`` lines.

    Comment lines start with ``#``; blank lines are ignored. Errors name the line: ``cfg3x:7: ...``.
    """
    lines = text.splitlines()
    sizes = _header_sizes(lines, name)
    if len(sizes) < 2 or sizes[0] != 1 or min(sizes) < 1:
        raise GrammarError(f"{name}: header level sizes {sizes} must start with 1 (the root) and all be >= 1")
    levels = layered_ids(sizes)
    level_of = {sym: level for level, symbols in enumerate(levels[:-1]) for sym in symbols}
    rules: dict[int, tuple[tuple[int, ...], ...]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{name}:{number}"
        lhs, alts = _parse_rule_line(line, where)
        if lhs not in level_of:
            raise GrammarError(f"{where}: {lhs} is not a non-terminal id (NTs are {levels[-2][0]}..{levels[0][0]})")
        if lhs in rules:
            raise GrammarError(f"{where}: second rule line for NT {lhs}")
        for alt in alts:
            if problem := _rule_problem(levels, level_of[lhs], lhs, alt):
                raise GrammarError(f"{where}: {problem}")
        rules[lhs] = alts
    missing = [sym for sym in level_of if sym not in rules]
    if missing:
        raise GrammarError(f"{name}: NT {missing[0]} (level {level_of[missing[0]]}) has no rules")
    return Grammar(name=name, levels=levels, rules=rules)


def _parse_rule_line(line: str, where: str) -> tuple[int, tuple[tuple[int, ...], ...]]:
    parts = line.split("->")
    if len(parts) != 2:
        raise GrammarError(f"{where}: expected 'NT -> A B | C D E', got {line.strip()!r}")
    lhs = _ints(parts[0].split(), where)
    if len(lhs) != 1:
        raise GrammarError(f"{where}: expected exactly one NT left of '->', got {parts[0].strip()!r}")
    alts = tuple(_ints(alt.split(), where) for alt in parts[1].split("|"))
    return lhs[0], alts


def format_grammar(g: Grammar) -> str:
    """The text format read by ``parse_grammar``; for a published grammar it equals its package file."""
    sizes = ", ".join(str(len(level)) for level in g.levels)
    lines = [
        f"# {g.name}: {g.depth} rule levels, symbols per level (root first, terminals last) [{sizes}]",
        f"# terminals: {' '.join(map(str, g.terminals))}; each line: NT -> alternatives (uniform choice); "
        "NT ids as in the paper's figures",
    ]
    for symbols in g.nonterminal_levels:
        for lhs in symbols:
            lines.append(f"{lhs} -> " + " | ".join(" ".join(map(str, alt)) for alt in g.rules[lhs]))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ random grammar


def _check_range(knob: str, bounds: tuple[int, int]) -> None:
    lo, hi = bounds
    if not 1 <= lo <= hi:
        raise GrammarError(f"random_grammar: {knob}={bounds} must satisfy 1 <= lo <= hi")


def _distinct_sequences(symbols: int, lengths: range, distinct: bool) -> int:
    if distinct:
        return sum(math.perm(symbols, n) for n in lengths)
    return sum(symbols**n for n in lengths)


def _draw_level(rng: random.Random, lhs_ids: Sequence[int], rhs_ids: Sequence[int], rules_per_symbol: tuple[int, int],
                rule_length: tuple[int, int], no_duplicate_symbol: bool, no_duplicate_sequence: bool,
                ) -> dict[int, tuple[tuple[int, ...], ...]]:
    """One level's rules, as the official builder draws them (rejecting repeats when asked)."""
    counts = [rng.randint(*rules_per_symbol) for _ in lhs_ids]
    lengths = range(rule_length[0], rule_length[1] + 1)
    if no_duplicate_sequence and sum(counts) > _distinct_sequences(len(rhs_ids), lengths, no_duplicate_symbol):
        raise GrammarError(f"random_grammar: {sum(counts)} distinct rules needed on a level with only "
                           f"{len(rhs_ids)} next-level symbols and rule_length={rule_length}")
    seen: set[tuple[int, ...]] = set()
    level: dict[int, tuple[tuple[int, ...], ...]] = {}
    for lhs, count in zip(lhs_ids, counts):
        alts: list[tuple[int, ...]] = []
        while len(alts) < count:
            size = rng.randint(*rule_length)
            if no_duplicate_symbol:
                alt = tuple(rng.sample(rhs_ids, size))
            else:
                alt = tuple(rng.choice(rhs_ids) for _ in range(size))
            if no_duplicate_sequence and alt in seen:
                continue
            seen.add(alt)
            alts.append(alt)
        level[lhs] = tuple(alts)
    return level


def random_grammar(*, seed: int, symbols_per_level: Sequence[int], rules_per_symbol: tuple[int, int],
                   rule_length: tuple[int, int], no_duplicate_symbol: bool = False,
                   no_duplicate_sequence: bool = True, all_reachable: bool = True, name: str = "random",
                   ) -> Grammar:
    """A fresh layered grammar with the official builder's knobs (SPEC 1.1, ``build_graph``).

    ``symbols_per_level`` is root first (must start with 1) and ends with the number of terminals. Each NT
    gets U{rules_per_symbol} rules, each of length U{rule_length}, each symbol uniform over the next level;
    ``no_duplicate_symbol`` keeps the symbols of one rule distinct; ``no_duplicate_sequence`` keeps the rules
    of one level distinct. With ``all_reachable`` a level is redrawn until every next-level symbol occurs in
    one of its rules (so every symbol is reachable from the root); the official builder does not do this
    (cfg3e1 has unreachable symbols), so pass False to mimic it. Deterministic per ``seed``.
    """
    sizes = list(symbols_per_level)
    if len(sizes) < 2 or sizes[0] != 1 or min(sizes) < 1:
        raise GrammarError(f"random_grammar: symbols_per_level={sizes} must be [1, ..., V] with every size >= 1")
    _check_range("rules_per_symbol", rules_per_symbol)
    _check_range("rule_length", rule_length)
    levels = layered_ids(sizes)
    for level in range(len(sizes) - 1):
        _check_level_feasible(sizes[level], sizes[level + 1], rules_per_symbol, rule_length, no_duplicate_symbol,
                              all_reachable)
    rng = random.Random(seed)
    rules: dict[int, tuple[tuple[int, ...], ...]] = {}
    for level in range(len(sizes) - 1):
        for _attempt in range(1000):
            drawn = _draw_level(rng, levels[level], levels[level + 1], rules_per_symbol, rule_length,
                                no_duplicate_symbol, no_duplicate_sequence)
            used = {sym for alts in drawn.values() for alt in alts for sym in alt}
            if not all_reachable or len(used) == sizes[level + 1]:
                break
        else:
            raise GrammarError(f"random_grammar: level {level} never reached all {sizes[level + 1]} next-level "
                               "symbols in 1000 draws; raise rules_per_symbol/rule_length or all_reachable=False")
        rules.update(drawn)
    return Grammar(name=name, levels=levels, rules=rules)


def _check_level_feasible(size: int, next_size: int, rules_per_symbol: tuple[int, int], rule_length: tuple[int, int],
                          no_duplicate_symbol: bool, all_reachable: bool) -> None:
    if no_duplicate_symbol and rule_length[0] > next_size:
        raise GrammarError(f"random_grammar: no_duplicate_symbol with rule_length={rule_length} needs at least "
                           f"{rule_length[0]} symbols per level, a level has {next_size}")
    if all_reachable and size * rules_per_symbol[1] * rule_length[1] < next_size:
        raise GrammarError(f"random_grammar: {size} NTs cannot reach {next_size} next-level symbols with "
                           f"rules_per_symbol={rules_per_symbol}, rule_length={rule_length}; "
                           "use all_reachable=False")


# ------------------------------------------------------------------------------------------ sampling


@dataclass(frozen=True)
class Sentence:
    """A sampled string with its parse-tree labels (SPEC 1.1 "Parse-tree labels for probing").

    ``ancestors[l-1][i]`` is the level-l NT above token i and ``boundaries[l-1][i]`` is 1 iff token i is the
    last token of that level-l subtree, for the NT levels l = 1..D-1 (the root level is constant, omitted).
    """

    tokens: list[int]
    ancestors: list[list[int]]
    boundaries: list[list[int]]


def sample_sentence(g: Grammar, rng: random.Random) -> Sentence:
    """Expand the root top-down, level by level, choosing each NT's rule uniformly with ``rng``."""
    symbols = [g.root]
    node_symbols: list[list[int]] = []  # node_symbols[l-1]: the level-l nodes' symbols, l = 1..D-1
    owners: list[list[int]] = []  # owners[l-1][k]: index of the level-l node above the k-th current node
    for level in range(g.depth):
        children: list[int] = []
        parent: list[int] = []
        for index, sym in enumerate(symbols):
            alt = rng.choice(g.rules[sym])
            children.extend(alt)
            parent.extend([index] * len(alt))
        if level > 0:
            owners = [[row[p] for p in parent] for row in owners] + [parent]
            node_symbols.append(symbols)
        symbols = children
    last = len(symbols) - 1
    return Sentence(
        tokens=symbols,
        ancestors=[[syms[k] for k in row] for syms, row in zip(node_symbols, owners)],
        boundaries=[[int(i == last or row[i] != row[i + 1]) for i in range(last + 1)] for row in owners],
    )


def sample_sentences(g: Grammar, seed: int, start: int, count: int) -> list[Sentence]:
    """Examples start..start+count-1; example i uses its own RNG seeded by (seed, i), so any chunking of the
    index range yields the same examples and each one regenerates alone."""
    return [sample_sentence(g, random.Random(f"cfg:{seed}:{i}")) for i in range(start, start + count)]


# ------------------------------------------------------------------------------------------- judge

Spans = dict[int, int]  # span length -> bitmask of the start positions where a symbol derives that span


def _concat(left: Spans, right: Spans) -> Spans:
    """Spans of the concatenation X Y from the spans of X and of Y (bit-parallel over start positions)."""
    out: Spans = {}
    for left_len, left_starts in left.items():
        for right_len, right_starts in right.items():
            starts = left_starts & (right_starts >> left_len)
            if starts:
                total = left_len + right_len
                out[total] = out.get(total, 0) | starts
    return out


def _advance(reach: int, spans: Spans) -> int:
    """End positions of the symbol's spans that start at a position in the bitmask ``reach``."""
    out = 0
    for length, starts in spans.items():
        hit = starts & reach
        if hit:
            out |= hit << length
    return out


def _length_bounds(g: Grammar) -> dict[int, tuple[int, int]]:
    """Shortest and longest string each symbol derives."""
    bounds = {t: (1, 1) for t in g.terminals}
    for level in reversed(g.nonterminal_levels):
        for sym in level:
            sums = [(sum(bounds[x][0] for x in alt), sum(bounds[x][1] for x in alt)) for alt in g.rules[sym]]
            bounds[sym] = (min(lo for lo, _ in sums), max(hi for _, hi in sums))
    return bounds


class Judge:
    """Exact membership test for a layered grammar (the role of the official ``solve_dp_noneq_fast``).

    The ``tabulated_levels`` NT levels just above the terminals get, bottom-up, their spans as {length:
    bitmask of start positions}; a rule's spans are the bit-parallel concatenation of its symbols' spans, so
    one big-int AND covers every start position at once. The levels above, whose spans are long and many, are
    not tabulated: the root's rules are expanded top-down and followed left to right on the *set* of
    reachable positions (a bitmask, memoized per symbol and set), which is exact because only a path from
    position 0 to n matters. No parse tree is ever enumerated. The default of 3 tabulated levels was the
    fastest on cfg3f/j/k strings (valid, perturbed, random, concatenated; see benchmarks/bench_judge.py).
    The terminal level is a bitmask of positions per terminal, so ``accepts_any`` can allow several
    terminals at one position at no extra cost (the implicit-grammar judge).
    """

    def __init__(self, g: Grammar, tabulated_levels: int = 3) -> None:
        self.grammar = g
        self._terminals = frozenset(g.terminals)
        first = max(0, g.depth - max(0, tabulated_levels))
        self._tabulated = [sym for level in reversed(g.levels[first:-1]) for sym in level]
        self._min_len, self._max_len = _length_bounds(g)[g.root]

    def __call__(self, tokens: Sequence[int]) -> bool:
        """True iff the root derives exactly ``tokens``; False for an empty string or a non-terminal id."""
        tokens = list(tokens)
        if not self._min_len <= len(tokens) <= self._max_len or not self._terminals.issuperset(tokens):
            return False
        masks = dict.fromkeys(self.grammar.terminals, 0)
        for position, token in enumerate(tokens):
            masks[token] |= 1 << position
        return self._derives(len(tokens), masks)

    def accepts_any(self, options: Sequence[Iterable[int]]) -> bool:
        """True iff the root derives some string whose i-th terminal is one of ``options[i]``.

        This is the judge of an implicit grammar (``physlm.worlds.cfg.implicit``), where a position's token could
        have been emitted by several terminals. Ids in ``options`` that are not terminals are ignored, so a
        position with no terminal among its options makes the answer False.
        """
        masks = dict.fromkeys(self.grammar.terminals, 0)
        for position, allowed in enumerate(options):
            bit, hit = 1 << position, False
            for t in allowed:
                if t in masks:
                    masks[t] |= bit
                    hit = True
            if not hit:
                return False
        return self._derives(len(options), masks)

    def _derives(self, n: int, masks: dict[int, int]) -> bool:
        """Whether the root derives a length-``n`` string with terminal t allowed at the positions in
        ``masks[t]`` (a bitmask over positions; one terminal per position for a plain string)."""
        if not self._min_len <= n <= self._max_len:
            return False
        spans = self._tabulate(masks)
        memo: dict[tuple[int, int], int] = {}
        return bool(self._forward(self.grammar.root, 1, spans, memo) >> n & 1)

    def _tabulate(self, masks: dict[int, int]) -> dict[int, Spans]:
        spans: dict[int, Spans] = {t: ({1: m} if m else {}) for t, m in masks.items()}
        for sym in self._tabulated:
            merged: Spans = {}
            for alt in self.grammar.rules[sym]:
                part = spans[alt[0]]
                for nxt in alt[1:]:
                    part = _concat(part, spans[nxt])
                for length, starts in part.items():
                    merged[length] = merged.get(length, 0) | starts
            spans[sym] = merged
        return spans

    def _forward(self, sym: int, reach: int, spans: dict[int, Spans], memo: dict[tuple[int, int], int]) -> int:
        """End positions of ``sym``-spans starting anywhere in ``reach``."""
        if sym in spans:
            return _advance(reach, spans[sym])
        key = (sym, reach)
        if key not in memo:
            out = 0
            for alt in self.grammar.rules[sym]:
                cur = reach
                for nxt in alt:
                    cur = self._forward(nxt, cur, spans, memo)
                    if not cur:
                        break
                out |= cur
            memo[key] = out
        return memo[key]
