"""The toy world's params schemas: `datasets.<d>.generate`, `datasets.<d>.tokenize` (the engine's
`TokenizeParams` and `loss`), `probe.toy` and `evaluate.toy` (each deep-merged with a study's overrides)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from physlm.params import Section, TokenizeParams
from physlm.worlds import WorldParams


class ToyGenerateParams(Section):
    train_examples: int = Field(gt=0)
    test_examples: int = Field(gt=0)
    length: int = Field(gt=0, le=64, description="letters per string (an example is 2 * length + 1 tokens)")
    letters: int = Field(ge=2, le=26, description="the alphabet: the first `letters` of a..z")


class ToyTokenizeParams(TokenizeParams):
    loss: Literal["all", "copy"] = Field("all", description="the training targets: every token, or (a loss mask)"
                                                           " only the copy after the separator and its <eos>")


class ToyProbeParams(Section):
    examples: int = Field(ge=4, description="held-out test examples whose separator state is probed")
    train_fraction: float = Field(gt=0.0, lt=1.0, description="share of them that fits the probe; the rest scores it")
    steps: int = Field(gt=0, description="full-batch Adam steps of the linear probe")
    lr: float = Field(gt=0.0)
    control: bool = Field(description="also probe a randomly initialised model of the same shape")


class ToyEvaluateParams(Section):
    examples: int = Field(gt=0, description="held-out test examples whose copy is generated (greedy)")
    batch_size: int = Field(gt=0)
    control: bool = Field(description="also score a randomly initialised model of the same shape")


PARAMS = WorldParams(generate=ToyGenerateParams, tokenize=ToyTokenizeParams, probe=ToyProbeParams, evaluate=ToyEvaluateParams)
