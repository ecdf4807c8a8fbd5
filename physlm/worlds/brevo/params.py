"""The Brevo world's params schemas: `datasets.<d>.generate`, `datasets.<d>.tokenize` (the engine's
`TokenizeParams`), `probe.brevo` and `evaluate.brevo` (each deep-merged with a study's overrides)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from physlm.params import Section, TokenizeParams
from physlm.worlds import WorldParams


class BrevoGenerateParams(Section):
    N: int = Field(ge=3, le=60000, description="test instances have N vertices, training ones 3..N (Brevo1 70, 90, 110;"
                   " Brevo2 30, 40, 50); Brevo1 names them 1..N")
    names: Literal["tokens", "words"] = Field(description="tokens: one token per vertex (Brevo1); words: a multi-token word (Brevo2)")
    word_vocab: int = Field(4, ge=1, description="words: symbols 1..V inside a word, V+1..2V at its end (paper 4)")
    word_lengths: tuple[int, int] = Field((2, 4), description="words: lengths drawn from min..max (paper 2..4)")
    query: Literal["quarter", "last"] = Field("quarter", description="quarter: a vertex of the last quarter of the"
                                              " creation order (the paper); last: the last vertex (the released code)")
    train_examples: int = Field(gt=0, description="training instances, n ~ P(n) ∝ 1/(n + √N) on 3..N")
    test_examples: int = Field(gt=0, description="test instances of n = N vertices")
    size_examples: int = Field(gt=0, description="instances per size of the sizes eval set")
    eval_sizes: list[int] = Field(default_factory=list, description="vertex counts of the sizes eval set ([] = N/4, N/2, 3N/4)")
    workers: int = Field(0, ge=0, description="generator processes (0 = all cores); the output does not depend on it")

    @model_validator(mode="after")
    def _consistent(self) -> BrevoGenerateParams:
        low, high = self.word_lengths
        if not 1 <= low <= high:
            raise ValueError(f"word_lengths {list(self.word_lengths)} must be 1 <= min <= max")
        available = sum(self.word_vocab**length for length in range(low, high + 1))  # physlm.playground.word_count
        if self.names == "words" and available < self.N:  # (not imported: the params schemas stay free of the engine)
            raise ValueError(f"only {available} distinct words of {low}..{high} symbols over {self.word_vocab}: fewer"
                             f" than N = {self.N}")
        bad = [n for n in self.eval_sizes if not 3 <= n <= self.N]
        if bad:
            raise ValueError(f"eval_sizes {bad} outside 3..N = {self.N}")
        return self

    def sizes(self) -> list[int]:
        """The sizes eval set's vertex counts."""
        return list(self.eval_sizes) or sorted({max(3, round(self.N * k / 4)) for k in (1, 2, 3)})


class BrevoProbeParams(Section):
    examples: int = Field(ge=4, description="test instances (n = N) whose state at <ans> is probed")
    train_fraction: float = Field(gt=0.0, lt=1.0, description="share of them that fits the probes; the rest scores them")
    steps: int = Field(gt=0, description="full-batch Adam steps of each linear probe")
    lr: float = Field(gt=0.0)
    batch_size: int = Field(gt=0, description="instances per forward pass when reading the hidden states")
    control: bool = Field(description="also probe a randomly initialised model of the same shape")


class BrevoEvaluateParams(Section):
    examples: int = Field(gt=0, description="test instances (n = N) answered (at most the dataset's test_examples)")
    size_examples: int = Field(ge=0, description="instances per size of the sizes eval set (0 skips it)")
    batch_size: int = Field(gt=0)
    control: bool = Field(description="also score a randomly initialised model of the same shape (test set)")


PARAMS = WorldParams(generate=BrevoGenerateParams, tokenize=TokenizeParams, probe=BrevoProbeParams, evaluate=BrevoEvaluateParams)
