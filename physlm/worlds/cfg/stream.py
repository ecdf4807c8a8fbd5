"""The grammar world's stream step (`physlm.stream`): fresh training sentences on the fly.

Example k of window j is sampled from `random.Random(f"cfg-stream:{seed}:{j}:{k}")`, which then drives the
perturbation (the materialized train split's rule, `corrupt.perturb_sentence`) and the implicit emission the
dataset asks for; the grammar and bags come from stream.json (what the generate step wrote beside its
generate section). Sentences are never dropped for length: a sentence longer than a window simply continues
in the next, as in the materialized stream.
"""

from __future__ import annotations

import random

import polars as pl

from physlm.stream import Example, StreamSpec
from physlm.worlds.cfg.corrupt import perturb_sentence
from physlm.worlds.cfg.generate import cfg_frame
from physlm.worlds.cfg.grammar import parse_grammar, sample_sentence
from physlm.worlds.cfg.implicit import bags_from_json, emit
from physlm.worlds.cfg.params import CfgGenerateParams
from physlm.worlds.cfg.tokenize import cfg_encode, cfg_vocab


class Source:
    drops_long = False

    def __init__(self, spec: StreamSpec) -> None:
        record = spec.record()
        self.perturb = CfgGenerateParams.model_validate_json(spec.generate).perturb
        self.grammar = parse_grammar(record["grammar"], "stream.json grammar")
        self.bags = bags_from_json(record["bags"], "stream.json bags") if record["bags"] else None
        self.vocab_size = cfg_vocab(len(self.grammar.terminals) if self.bags is None else self.bags.vocab_size).size

    def example(self, seed: int, j: int, k: int) -> Example:
        rng = random.Random(f"cfg-stream:{seed}:{j}:{k}")
        sentence = sample_sentence(self.grammar, rng)
        terminals, hit = sentence.tokens, False
        if self.perturb is not None:  # the materialized train split's rule (generate.py), on this RNG
            p = self.perturb
            terminals, hit = perturb_sentence(terminals, rng, fraction=p.fraction, rate=p.rate,
                                              num_terminals=len(self.grammar.terminals), kind=p.kind)
        tokens = emit(self.bags, terminals, rng) if self.bags is not None else None
        return Example(k, cfg_encode(terminals if tokens is None else tokens), (sentence, terminals, tokens, hit))

    def frame(self, examples: list[Example]) -> pl.DataFrame:
        sentences, terminals, tokens, hits = zip(*(e.payload for e in examples))
        frame = cfg_frame(list(sentences), 0, list(terminals), None if self.bags is None else list(tokens), list(hits))
        return frame.with_columns(index=pl.Series([e.k for e in examples], dtype=pl.Int64))


def source(spec: StreamSpec) -> Source:
    return Source(spec)
