"""One canonical parse tree of a terminal string of a layered grammar (``physlm.worlds.cfg.grammar``).

``parse(g, tokens)`` returns the string as a labelled ``Sentence`` - the same fields the sampler fills in
(``ancestors`` / ``boundaries`` per NT level 1..D-1) - or None when the root does not derive it. It is what
per-subtree statistics of model-generated strings need (``physlm.worlds.cfg.diversity.subtree_diversity_compare``):
generated strings carry no labels.

Algorithm (a memoised top-down span parser; layered grammars have no recursion, so it always terminates):

* ``ends(A, i)`` = the set of positions j such that A derives ``tokens[i:j]``, as a bitmask over j, memoised
  on (A, i). A rule ``A -> X1 .. Xm`` is followed left to right on the *set* of reachable positions, each
  reachable position k contributing ``ends(X_t, k)``. Positions that cannot leave room for the rest of the
  rule (shortest yields of the remaining symbols) or that lie past the end of the string are pruned.
* The ``tabulated_levels`` NT levels just above the terminals (default 3, as in ``Judge``) are filled
  bottom-up instead, for all start positions at once: their span lengths are few and short, so a bit-parallel
  table (span length -> bitmask of start positions, one big-int AND per pair of lengths) is cheaper than many
  small top-down calls.
* Reconstruction then walks down from (root, 0, n).

Tie-breaking (the cfg3 grammars are ambiguous: a string can have several parse trees). The parse returned is
the *canonical* one, defined top-down: a node of symbol A spanning ``tokens[i:j]`` takes the **first rule of A
in rule order** (``g.rules[A]``) that derives ``tokens[i:j]``; its children's split points are the
**lexicographically smallest** feasible ones (leftmost-shortest: the first child as short as possible such
that the remaining children can still derive the rest, then the second child likewise, and so on); each child
is then expanded by the same rule. The result is a deterministic function of the grammar and the string.
Per-subtree statistics computed from these labels describe this canonical parse, not the sampler's
distribution over parses: for an ambiguous string the sampler may have used another tree. (On an unambiguous
grammar there is only one tree, so the labels equal the sampler's; tested.)

Cost (measured on the 2-core dev box, 200 sampled strings each): cfg3b (length 167-366) 1.7 ms per string
on average, 3 ms at most; cfg3f (length 126-423) 1.8 ms on average, 5 ms at most; cfg3j (length 301-866)
4.5 ms on average, 10 ms at most. Strings outside the language are cheaper (most fail early).
``tests/test_cfg_parse.py`` checks that a cfg3f string of length ~250 takes well under 0.2 s. Membership
agrees with ``Judge`` (tested on sampled, perturbed, truncated, spliced and random strings, and exhaustively
on short strings of small grammars).

This module never imports torch.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from physlm.worlds.cfg.grammar import Grammar, Sentence, _concat

__all__ = ["Parser", "parse", "parse_many"]


def _bits(mask: int) -> Iterable[int]:
    """Positions of the set bits of ``mask``, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


class Parser:
    """A reusable parser for one grammar (precomputes yield-length bounds and the rule tables)."""

    def __init__(self, g: Grammar, tabulated_levels: int = 3) -> None:
        self.grammar = g
        self._terminals = frozenset(g.terminals)
        self._level = {sym: level for level, symbols in enumerate(g.levels) for sym in symbols}
        bounds = {t: (1, 1) for t in g.terminals}
        for symbols in reversed(g.nonterminal_levels):
            for sym in symbols:
                sums = [(sum(bounds[x][0] for x in alt), sum(bounds[x][1] for x in alt)) for alt in g.rules[sym]]
                bounds[sym] = (min(lo for lo, _ in sums), max(hi for _, hi in sums))
        self._bounds = bounds
        # For each rule, the shortest yield of its symbols t+1..m (room the rest of the rule needs after child t).
        self._rest_min = {
            sym: tuple(tuple(sum(bounds[x][0] for x in alt[t + 1:]) for t in range(len(alt))) for alt in g.rules[sym])
            for sym in self._level if sym not in self._terminals
        }
        first = max(1, g.depth - max(0, tabulated_levels))  # never tabulate the root
        self._tabulated = [sym for level in reversed(g.levels[first:-1]) for sym in level]
        self._tabulated_set = frozenset(self._tabulated)

    # ------------------------------------------------------------------------------------------ public

    def accepts(self, tokens: Sequence[int]) -> bool:
        """Whether the root derives ``tokens`` (same answer as ``Judge``)."""
        state = self._start(tokens)
        return state is not None and bool(state.ends(self.grammar.root, 0) >> len(state.tokens) & 1)

    def __call__(self, tokens: Sequence[int]) -> Sentence | None:
        """The canonical parse of ``tokens`` as a labelled ``Sentence``, or None if it is not in the language."""
        state = self._start(tokens)
        if state is None:
            return None
        n = len(state.tokens)
        if not state.ends(self.grammar.root, 0) >> n & 1:
            return None
        depth = self.grammar.depth
        ancestors = [[0] * n for _ in range(depth - 1)]
        boundaries = [[0] * n for _ in range(depth - 1)]
        stack = [(self.grammar.root, 0, n)]
        while stack:
            sym, i, j = stack.pop()
            level = self._level[sym]
            if level == depth:
                continue  # a terminal: tokens[i] == sym by construction
            if level > 0:
                row = ancestors[level - 1]
                row[i:j] = [sym] * (j - i)
                boundaries[level - 1][j - 1] = 1
            alt, cuts = state.derivation(sym, i, j)
            stack.extend(zip(alt, cuts[:-1], cuts[1:]))
        return Sentence(tokens=list(state.tokens), ancestors=ancestors, boundaries=boundaries)

    # ---------------------------------------------------------------------------------------- internals

    def _start(self, tokens: Sequence[int]) -> _State | None:
        if hasattr(tokens, "tolist"):
            tokens = tokens.tolist()
        try:
            toks = tuple(int(t) for t in tokens)
        except (TypeError, ValueError):
            return None
        lo, hi = self._bounds[self.grammar.root]
        if not lo <= len(toks) <= hi or not self._terminals.issuperset(toks):
            return None
        return _State(self, toks)


class _State:
    """The memo tables of one parse."""

    def __init__(self, parser: Parser, tokens: tuple[int, ...]) -> None:
        self.p = parser
        self.tokens = tokens
        self.n = len(tokens)
        self.memo: dict[tuple[int, int], int] = {}
        self.table = self._tabulate()

    def _tabulate(self) -> dict[int, dict[int, int]]:
        """Bottom-up spans of the terminals and tabulated levels: symbol -> {span length: start bitmask}."""
        g = self.p.grammar
        table: dict[int, dict[int, int]] = {t: {} for t in g.terminals}
        for position, token in enumerate(self.tokens):
            spans = table[token]
            spans[1] = spans.get(1, 0) | 1 << position
        for sym in self.p._tabulated:
            merged: dict[int, int] = {}
            for alt in g.rules[sym]:
                part = table[alt[0]]
                for nxt in alt[1:]:
                    part = _concat(part, table[nxt])
                    if not part:
                        break
                for length, starts in part.items():
                    merged[length] = merged.get(length, 0) | starts
            table[sym] = merged
        return table

    def ends(self, sym: int, i: int) -> int:
        """Bitmask of the positions j with ``sym`` =>* tokens[i:j]."""
        key = (sym, i)
        found = self.memo.get(key)
        if found is not None:
            return found
        out = 0
        spans = self.table.get(sym)
        if spans is not None:
            for length, starts in spans.items():
                if starts >> i & 1:
                    out |= 1 << (i + length)
        else:
            limit = self.n
            rules = self.p.grammar.rules[sym]
            rest = self.p._rest_min[sym]
            for alt, room in zip(rules, rest):
                cur = 1 << i
                for nxt, need in zip(alt, room):
                    reach = 0
                    for k in _bits(cur):
                        reach |= self.ends(nxt, k)
                    top = limit - need + 1  # child ends past ``top - 1`` leave no room for the rest
                    cur = reach & ((1 << top) - 1) if top > 0 else 0
                    if not cur:
                        break
                out |= cur
        self.memo[key] = out
        return out

    def derivation(self, sym: int, i: int, j: int) -> tuple[tuple[int, ...], list[int]]:
        """The canonical rule of ``sym`` over tokens[i:j] and its cut points [i, k1, ..., j] (see module doc)."""
        for alt in self.p.grammar.rules[sym]:
            # forward: reach[t] = positions reachable from i after alt[:t]
            reach = [1 << i]
            for nxt in alt:
                cur = 0
                for k in _bits(reach[-1]):
                    cur |= self.ends(nxt, k)
                reach.append(cur & ((1 << (j + 1)) - 1))
            if not reach[-1] >> j & 1:
                continue
            # backward: good[t] = positions in reach[t] from which alt[t:] derives up to exactly j
            good = [0] * (len(alt) + 1)
            good[-1] = 1 << j
            for t in range(len(alt) - 1, -1, -1):
                mask = 0
                for k in _bits(reach[t]):
                    if self.ends(alt[t], k) & good[t + 1]:
                        mask |= 1 << k
                good[t] = mask
            cuts = [i]
            for t, nxt in enumerate(alt):
                options = self.ends(nxt, cuts[-1]) & good[t + 1]
                cuts.append((options & -options).bit_length() - 1)  # the shortest feasible child
            return alt, cuts
        raise AssertionError(f"symbol {sym} does not derive tokens[{i}:{j}]")  # unreachable after ends() said yes


@functools.lru_cache(maxsize=16)
def _parser(g: Grammar) -> Parser:
    return Parser(g)


def parse(g: Grammar, tokens: Sequence[int]) -> Sentence | None:
    """The canonical parse tree of ``tokens`` (see the module docstring for the tie-breaking rule) as a
    labelled ``Sentence``, or None if the root of ``g`` does not derive ``tokens`` (also for an empty string
    or ids that are not terminals)."""
    return _parser(g)(tokens)


def parse_many(g: Grammar, strings: Iterable[Sequence[int]]) -> list[Sentence | None]:
    """``parse`` of each string (one shared ``Parser``)."""
    parser = _parser(g)
    return [parser(s) for s in strings]
