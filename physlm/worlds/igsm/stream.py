"""The iGSM world's stream step (`physlm.stream`): fresh training problems on the fly.

Example k of window j is `problems.generate_problem(spec, seed, k, split="train", stream=f"stream{j}")`: a
training-split template (the materialized train split's template-hash rule) from an RNG stream disjoint from
the materialized splits'. Problems longer than a window are dropped, as tokenize drops them.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from physlm.stream import Example, StreamSpec
from physlm.worlds.igsm.frames import problems_frame
from physlm.worlds.igsm.generate import igsm_spec
from physlm.worlds.igsm.knowledge import load_knowledge
from physlm.worlds.igsm.params import IgsmGenerateParams
from physlm.worlds.igsm.problems import generate_problem
from physlm.worlds.igsm.text import igsm_sequence
from physlm.worlds.igsm.tokenize import vocabulary


class Source:
    drops_long = True

    def __init__(self, spec: StreamSpec) -> None:
        self.spec, self.knowledge = igsm_spec(IgsmGenerateParams.model_validate_json(spec.generate)), load_knowledge()
        self.vocab = vocabulary(spec.tokenization()["units"])
        self.vocab_size = self.vocab.size

    def example(self, seed: int, j: int, k: int) -> Example:
        problem = generate_problem(self.spec, seed, k, split="train", stream=f"stream{j}", knowledge=self.knowledge)
        ids = self.vocab.encode(igsm_sequence(problem.problem, problem.solution, problem.answer))
        return Example(k, np.asarray(ids, dtype=np.int64), problem)

    def frame(self, examples: list[Example]) -> pl.DataFrame:
        return problems_frame([e.payload for e in examples], [e.k for e in examples], split="train")


def source(spec: StreamSpec) -> Source:
    return Source(spec)
