"""The Mano world's params schemas: `datasets.<d>.generate`, `datasets.<d>.tokenize` (the engine's
`TokenizeParams`), `probe.mano` and `evaluate.mano` (each deep-merged with a study's overrides)."""

from __future__ import annotations

from pydantic import Field, model_validator

from physlm.params import Section, TokenizeParams
from physlm.worlds import WorldParams
from physlm.worlds.mano.expression import MAX_OPS, MOD, is_prime


class ManoGenerateParams(Section):
    max_ops: int = Field(ge=1, le=MAX_OPS, description="L: training expressions have U{1..L} operations, test ones L (paper 10, 13, 16)")
    operators: str = Field("+-*", pattern=r"^[-+*/]+$", description="operators drawn uniformly (paper: +-*; / divides by the modular inverse)")
    modulus: int = Field(MOD, ge=2, le=MOD, description="values mod this (paper 23); smaller for a miniature a CPU learns"
                                                       " in minutes (the vocabulary keeps all 23 value tokens)")
    augment: bool = Field(False, description="knowledge augmentation: two symbols per operator, length token and answer marker")
    train_examples: int = Field(gt=0, description="training expressions, U{1..L} operations each")
    test_examples: int = Field(gt=0, description="test expressions of exactly L operations")
    length_examples: int = Field(gt=0, description="expressions per length of the lengths eval set")
    eval_lengths: list[int] = Field(default_factory=list, description="operation counts of the lengths eval set ([] = 1..L)")
    held_out: float = Field(0.0, ge=0.0, lt=1.0, description="share of L-operation expressions (by a hash of the"
                            " expression) kept out of training: test (and the lengths set at ℓ = L) draws only them,"
                            " training never; 0 = the paper's generator, where a small table lets test expressions"
                            " repeat training ones (evaluate's in_train says how often)")
    workers: int = Field(0, ge=0, description="generator processes (0 = all cores); the output does not depend on it")

    @model_validator(mode="after")
    def _consistent(self) -> ManoGenerateParams:
        if len(set(self.operators)) != len(self.operators):
            raise ValueError(f"operators {self.operators!r} names an operator twice")
        if "/" in self.operators and not is_prime(self.modulus):
            raise ValueError(f"modulus {self.modulus} is not a prime: '/' needs every nonzero value invertible")
        bad = [n for n in self.eval_lengths if not 1 <= n <= self.max_ops]
        if bad:
            raise ValueError(f"eval_lengths {bad} outside 1..max_ops = {self.max_ops} (a longer length token is never trained)")
        return self

    def lengths(self) -> list[int]:
        """The lengths eval set's operation counts."""
        return list(self.eval_lengths) or list(range(1, self.max_ops + 1))



class ManoProbeParams(Section):
    examples: int = Field(ge=4, description="test expressions (L operations) whose state at <ans> is probed")
    train_fraction: float = Field(gt=0.0, lt=1.0, description="share of them that fits the probes; the rest scores them")
    steps: int = Field(gt=0, description="full-batch Adam steps of each linear probe")
    lr: float = Field(gt=0.0)
    batch_size: int = Field(gt=0, description="expressions per forward pass when reading the hidden states")
    control: bool = Field(description="also probe a randomly initialised model of the same shape")


class ManoEvaluateParams(Section):
    examples: int = Field(gt=0, description="test expressions (L operations) answered (at most the dataset's test_examples)")
    length_examples: int = Field(ge=0, description="expressions per length of the lengths eval set (0 skips it)")
    batch_size: int = Field(gt=0)
    control: bool = Field(description="also score a randomly initialised model of the same shape (test set)")


PARAMS = WorldParams(generate=ManoGenerateParams, tokenize=TokenizeParams, probe=ManoProbeParams, evaluate=ManoEvaluateParams)
