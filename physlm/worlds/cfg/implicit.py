"""Implicit context-free grammars (SPEC 1.5): every terminal emits a token drawn from its own bag.

A cfg3 grammar derives a string of terminals 1..V; an *implicit* grammar then replaces each terminal t by a
vocabulary token drawn uniformly from its bag ``bags[t]`` (tokens 1..M). The bags may be disjoint (each token
names its terminal, the grammar is only hidden behind a larger vocabulary) or overlap (a token can come from
several terminals, so the model has to resolve which one from the context); the official code's option for
this is ``multi_vocab``.

* ``Bags`` holds the bags and validates them; ``make_bags`` builds them deterministically (see its
  docstring for the overlap scheme); ``bags_to_json`` / ``bags_from_json`` / ``save_bags`` / ``load_bags``
  keep them with a dataset.
* ``emit`` / ``emit_sentences`` turn terminal strings into token strings, deterministic per example.
* ``ImplicitJudge`` is the exact membership test: a token string is in the language iff some terminal string
  of the grammar emits it. It runs ``cfg.Judge``'s bitmask DP with *sets* of terminals allowed per position
  (``Judge.accepts_any``).
* ``next_token_distributions_implicit`` is the exact p(next token | token prefix), summing over every
  terminal string that could have emitted the prefix (``cfg_dist.next_token_distributions`` with the bags
  as emissions).

``tests/test_implicit.py`` checks the judge against nltk's Earley parser on the grammar extended with
preterminal rules ``t -> token``, and the distribution against the enumerated token language of tiny
grammars. This module never imports torch.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from physlm.errors import DataError, PhyslmError
from physlm.worlds.cfg.grammar import Grammar, Judge
from physlm.worlds.cfg.dist import next_token_distributions

__all__ = [
    "BagsError",
    "Bags",
    "make_bags",
    "emit",
    "emit_sentences",
    "bags_to_json",
    "bags_from_json",
    "save_bags",
    "load_bags",
    "ImplicitJudge",
    "next_token_distributions_implicit",
]

JSON_KIND = "physlm.implicit_bags"


class BagsError(PhyslmError, ValueError):
    """Bags, a bag setting, or their use with a grammar is invalid; the message is one line naming what."""


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class Bags:
    """``bags[t - 1]`` is the tuple of vocabulary tokens terminal t can emit, each with probability 1/|bag|.

    Valid bags: at least one terminal, every bag non-empty and without repeats, tokens are integers and the
    vocabulary 1..M (M = the largest token) is covered, i.e. every token can be emitted by some terminal.
    """

    bags: tuple[tuple[int, ...], ...]
    _owners: tuple[frozenset[int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.bags, (str, bytes)) or not isinstance(self.bags, Sequence) or not self.bags:
            raise BagsError(f"bags must be a non-empty list of bags (one per terminal), got {self.bags!r:.80}")
        frozen = []
        for t, bag in enumerate(self.bags, 1):
            if isinstance(bag, (str, bytes)) or not isinstance(bag, Sequence):
                raise BagsError(f"bag of terminal {t} must be a list of token ids, got {bag!r:.80}")
            if not bag:
                raise BagsError(f"bag of terminal {t} is empty")
            for tok in bag:
                if not _is_int(tok) or tok < 1:
                    raise BagsError(f"bag of terminal {t}: token {tok!r:.40} is not an integer id >= 1")
            if len(set(bag)) != len(bag):
                repeated = sorted({int(tok) for tok in bag if bag.count(tok) > 1})
                raise BagsError(f"bag of terminal {t} repeats token(s) {repeated}")
            frozen.append(tuple(int(tok) for tok in bag))
        object.__setattr__(self, "bags", tuple(frozen))
        vocab = max(max(bag) for bag in frozen)
        owners: list[set[int]] = [set() for _ in range(vocab)]
        for t, bag in enumerate(frozen, 1):
            for tok in bag:
                owners[tok - 1].add(t)
        missing = [tok for tok, ts in enumerate(owners, 1) if not ts]
        if missing:
            raise BagsError(f"tokens {missing[:10]}{'...' if len(missing) > 10 else ''} of the vocabulary 1..{vocab} "
                            "are in no bag; every token 1..M must be emitted by some terminal")
        object.__setattr__(self, "_owners", tuple(frozenset(ts) for ts in owners))

    @property
    def num_terminals(self) -> int:
        """V, the number of terminals (bags)."""
        return len(self.bags)

    @property
    def vocab_size(self) -> int:
        """M: tokens are 1..M."""
        return len(self._owners)

    @property
    def disjoint(self) -> bool:
        """True iff every token belongs to exactly one bag (the terminal string is recoverable)."""
        return all(len(ts) == 1 for ts in self._owners)

    def bag(self, terminal: int) -> tuple[int, ...]:
        """The tokens terminal ``terminal`` (1..V) emits."""
        if not _is_int(terminal) or not 1 <= terminal <= self.num_terminals:
            raise BagsError(f"terminal {terminal!r:.40} is not in 1..{self.num_terminals}")
        return self.bags[terminal - 1]

    def terminals_of(self, token: int) -> frozenset[int]:
        """The terminals whose bag holds ``token``; empty for an id outside 1..M."""
        if _is_int(token) and 1 <= token <= self.vocab_size:
            return self._owners[token - 1]
        return frozenset()

    def check_grammar(self, g: Grammar) -> None:
        """Raise BagsError unless there is one bag per terminal of ``g``."""
        if self.num_terminals != len(g.terminals):
            raise BagsError(f"{self.num_terminals} bags given for the {len(g.terminals)} terminals of grammar "
                            f"{g.name!r}")


def make_bags(num_terminals: int, bag_size: int, overlap: int = 0, seed: int = 0) -> Bags:
    """Bags of ``bag_size`` tokens for terminals 1..``num_terminals``; deterministic per arguments.

    Scheme: lay M = V * (bag_size - overlap) token slots on a circle and give terminal t the ``bag_size``
    consecutive slots starting at slot (t - 1) * (bag_size - overlap). With ``overlap`` = 0 the bags are
    disjoint (M = V * bag_size). With ``overlap`` = k > 0 the last k slots of a bag are the first k of the next
    terminal's bag (cyclically: terminal V's with terminal 1's), so 2k tokens of each bag are ambiguous
    between two neighbouring terminals and bag_size - 2k are private; this needs 2k <= bag_size (otherwise a
    token would be in three bags) and V >= 2. With V = 2 each bag is both the "next" and the "previous" of the
    other, so the two share 2k tokens. Finally the slots are mapped to token ids 1..M by a permutation drawn
    from ``seed``, so token ids carry no hint of their terminal; each bag is stored sorted.
    """
    for name, value in (("num_terminals", num_terminals), ("bag_size", bag_size), ("overlap", overlap)):
        if not _is_int(value):
            raise BagsError(f"make_bags: {name}={value!r:.40} must be an integer")
    if num_terminals < 1 or bag_size < 1:
        raise BagsError(f"make_bags: num_terminals={num_terminals} and bag_size={bag_size} must be >= 1")
    if overlap < 0:
        raise BagsError(f"make_bags: overlap={overlap} must be >= 0")
    if overlap and num_terminals < 2:
        raise BagsError(f"make_bags: overlap={overlap} needs at least 2 terminals to share tokens, got 1")
    if 2 * overlap > bag_size:
        raise BagsError(f"make_bags: overlap={overlap} must be at most bag_size/2 = {bag_size / 2:g} (a bag shares "
                        "overlap tokens with each of its two neighbours)")
    stride = bag_size - overlap
    vocab = num_terminals * stride
    ids = list(range(1, vocab + 1))
    random.Random(f"bags:{seed}").shuffle(ids)
    bags = [sorted(ids[(t * stride + k) % vocab] for k in range(bag_size)) for t in range(num_terminals)]
    return Bags(tuple(tuple(bag) for bag in bags))


# ------------------------------------------------------------------------------------------ emission


def emit(bags: Bags, terminals: Sequence[int], rng: random.Random) -> list[int]:
    """Replace each terminal t by a token drawn uniformly from its bag with ``rng``."""
    out = []
    for pos, t in enumerate(terminals):
        if not _is_int(t) or not 1 <= t <= bags.num_terminals:
            raise BagsError(f"terminal {t!r:.40} at position {pos} is not in 1..{bags.num_terminals}")
        out.append(rng.choice(bags.bags[t - 1]))
    return out


def emit_sentences(bags: Bags, sentences_terminals: Sequence[Sequence[int]], seed: int, start: int) -> list[list[int]]:
    """Emit the terminal strings of examples start, start+1, ...; example i uses its own RNG seeded by
    (seed, i), so any chunking of the index range gives the same tokens (as ``cfg.sample_sentences``)."""
    return [emit(bags, terminals, random.Random(f"implicit:{seed}:{i}"))
            for i, terminals in enumerate(sentences_terminals, start)]


# ------------------------------------------------------------------------------------------ storage


def bags_to_json(bags: Bags) -> str:
    """One JSON object: ``{"kind": ..., "vocab_size": M, "bags": [[tokens of terminal 1], ...]}``."""
    doc = {"kind": JSON_KIND, "vocab_size": bags.vocab_size, "bags": [list(bag) for bag in bags.bags]}
    return json.dumps(doc) + "\n"


def bags_from_json(text: str, where: str = "bags JSON") -> Bags:
    """Parse ``bags_to_json``'s output; any problem is a one-line DataError starting with ``where``."""
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, TypeError) as err:
        raise DataError(f"{where}: not valid JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("kind") != JSON_KIND:
        raise DataError(f"{where}: expected a JSON object with \"kind\": \"{JSON_KIND}\"")
    if set(doc) != {"kind", "vocab_size", "bags"}:
        raise DataError(f"{where}: expected exactly the keys kind, vocab_size, bags; got {sorted(doc)}")
    if not isinstance(doc["bags"], list) or not all(isinstance(bag, list) for bag in doc["bags"]):
        raise DataError(f"{where}: \"bags\" must be a list of lists of token ids")
    try:
        bags = Bags(tuple(tuple(bag) for bag in doc["bags"]))
    except BagsError as err:
        raise DataError(f"{where}: {err}") from None
    if not _is_int(doc["vocab_size"]) or doc["vocab_size"] != bags.vocab_size:
        raise DataError(f"{where}: vocab_size {doc['vocab_size']!r:.40} does not match the bags' tokens "
                        f"1..{bags.vocab_size}")
    return bags


def save_bags(bags: Bags, path: str | Path) -> None:
    Path(path).write_text(bags_to_json(bags), encoding="utf-8")


def load_bags(path: str | Path) -> Bags:
    """Bags from a file written by ``save_bags``; a missing or malformed file is a one-line DataError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read bags file {str(path)!r}: {err}") from None
    return bags_from_json(text, where=f"bags file {str(path)!r}")


# ----------------------------------------------------------------------------------- judge and truth


class ImplicitJudge:
    """Exact membership for an implicit grammar: True iff some terminal string of ``grammar`` emits the
    tokens, i.e. ``Judge.accepts_any`` with the terminals that can emit each token allowed at its position.
    False for an empty string, an impossible length, or a token outside 1..M."""

    def __init__(self, grammar: Grammar, bags: Bags, tabulated_levels: int = 3) -> None:
        bags.check_grammar(grammar)
        self.grammar, self.bags = grammar, bags
        self._judge = Judge(grammar, tabulated_levels)
        self._options = {tok: tuple(sorted(bags.terminals_of(tok))) for tok in range(1, bags.vocab_size + 1)}

    def __call__(self, tokens: Sequence[int]) -> bool:
        options = self._options
        return self._judge.accepts_any([options.get(tok, ()) for tok in tokens])


def next_token_distributions_implicit(grammar: Grammar, bags: Bags, tokens: Sequence[int],
                                      exact: bool = False) -> np.ndarray:
    """p(next token | token prefix) after each prefix of ``tokens``: shape [len(tokens) + 1, M + 1].

    Row i is the distribution after the first i tokens; column 0 is EOS and column v token v. The language
    model is: sample a derivation top-down (uniform rule choice), emit each terminal t as a token uniform
    over its bag, then EOS; probabilities sum over every derivation and every terminal string that could
    emit the prefix. Float (log-space) by default, exact ``Fraction`` objects with ``exact=True``. Raises
    ValueError naming the first token outside 1..M or of probability 0 after the tokens before it.
    """
    bags.check_grammar(grammar)
    return next_token_distributions(grammar, tokens, exact=exact, emissions=bags.bags)
