"""A grammar-world dataset's language: its grammar (and the bags of an implicit grammar), from params
or from the files the generate stage wrote (raw/grammar.txt, raw/bags.json)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from physlm.errors import DataError
from physlm.worlds.cfg import grammar as cfg
from physlm.worlds.cfg.dist import next_token_distributions
from physlm.worlds.cfg.implicit import Bags, ImplicitJudge, load_bags, make_bags
from physlm.worlds.cfg.params import CfgGenerateParams, RandomGrammarParams


def resolve_grammar(spec: str | RandomGrammarParams) -> cfg.Grammar:
    if isinstance(spec, str):
        return cfg.load_grammar(spec)
    return cfg.random_grammar(
        seed=spec.seed,
        symbols_per_level=spec.symbols_per_level,
        rules_per_symbol=tuple(spec.rules_per_symbol),
        rule_length=tuple(spec.rule_length),
        no_duplicate_symbol=spec.no_duplicate_symbol,
        no_duplicate_sequence=spec.no_duplicate_sequence,
    )


def resolve_bags(params: CfgGenerateParams, grammar: cfg.Grammar) -> Bags | None:
    spec = params.implicit
    if spec is None:
        return None
    return make_bags(len(grammar.terminals), spec.bag_size, spec.overlap, spec.seed)


@dataclass(frozen=True)
class Language:
    """What a grammar-world dataset's strings are judged against: its grammar, and the bags if implicit."""

    grammar: cfg.Grammar
    bags: Bags | None = None

    @property
    def vocab_size(self) -> int:
        """Symbols a sentence is written in: terminals 1..V, or tokens 1..M of an implicit grammar."""
        return len(self.grammar.terminals) if self.bags is None else self.bags.vocab_size

    def judge(self) -> Callable[[Sequence[int]], bool]:
        return cfg.Judge(self.grammar) if self.bags is None else ImplicitJudge(self.grammar, self.bags)

    def next_token_distributions(self, tokens: Sequence[int]) -> np.ndarray:
        """[len + 1, vocab_size + 1]: exact next-symbol distributions (column 0 = EOS)."""
        return next_token_distributions(self.grammar, tokens, emissions=None if self.bags is None else self.bags.bags)


def load_language(raw_dir: Path) -> Language:
    """The grammar (raw/grammar.txt) and, for an implicit grammar, the bags (raw/bags.json) of a dataset."""
    bags_path = raw_dir / "bags.json"
    return Language(load_study_grammar(raw_dir), load_bags(bags_path) if bags_path.is_file() else None)


def load_study_grammar(raw_dir: Path) -> cfg.Grammar:
    """The grammar a study's data was generated from (raw/grammar.txt)."""
    path = raw_dir / "grammar.txt"
    if not path.is_file():
        raise DataError(f"{path}: file not found (run the generate stage)")
    return cfg.parse_grammar(path.read_text(), str(path))
