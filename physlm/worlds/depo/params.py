"""The Depo world's params schemas: `datasets.<d>.generate`, `datasets.<d>.tokenize`, `probe.depo` and
`evaluate.depo` (each deep-merged with a study's overrides)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from physlm.params import Section, TokenizeParams
from physlm.worlds import WorldParams
from physlm.worlds.depo.spec import DepoSpec

# The two word families of SPEC 7.3: (vocab, min_len, max_len). Depo2's vocab is the paper's 4; the released
# code's default 3 is `vocab: 3` (SPEC 9, item 4).
VARIANTS = {"depo1": (50, 1, 2), "depo2": (4, 5, 7)}


class DepoGenerateParams(Section):
    variant: Literal["depo1", "depo2"] = Field(description="depo1: words of 1-2 symbols over vocab 50; depo2: 5-7 symbols"
                                               " over vocab 4 (the paper; the released code's 3 is `vocab: 3`)")
    N: int = Field(ge=3, description="largest cycle: training n in 3..N with P(n) ~ 1/(n + sqrt N), test n = N")
    K: int = Field(ge=1, description="largest hop: training k ~ U{1..K}, test k over test_hops")
    vocab: int | None = Field(None, ge=1, description="V, symbols per word position (None: the variant's)")
    min_len: int | None = Field(None, ge=1, description="shortest word in symbols (None: the variant's)")
    max_len: int | None = Field(None, ge=1, description="longest word in symbols (None: the variant's)")
    queries: int = Field(10, ge=1, description="queries per instance: min(queries, n) distinct sources")
    test_hops: list[int] | None = Field(None, description="hops of test queries (None: powers of 2 up to K, and K)")
    train_instances: int = Field(gt=0)
    test_instances: int = Field(gt=0)
    workers: int = Field(1, ge=0, description="generator processes (0 = all cores); the output does not depend on it")

    def spec(self) -> DepoSpec:
        vocab, min_len, max_len = VARIANTS[self.variant]
        return DepoSpec(N=self.N, K=self.K, vocab=self.vocab or vocab, min_len=self.min_len or min_len,
                        max_len=self.max_len or max_len, queries=self.queries, test_hops=tuple(self.test_hops or ()))

    @model_validator(mode="after")
    def _consistent(self) -> DepoGenerateParams:
        s = self.spec()
        if s.min_len > s.max_len:
            raise ValueError(f"min_len {s.min_len} exceeds max_len {s.max_len}")
        available = sum(s.vocab**length for length in range(s.min_len, s.max_len + 1))  # playground.word_count
        if available < s.N:
            raise ValueError(f"N {s.N} needs {s.N} distinct words, but vocab {s.vocab} and lengths {s.min_len}..{s.max_len}"
                             f" give only {available}")
        if not all(1 <= k <= s.K for k in s.test_hops):
            raise ValueError(f"test_hops {list(s.test_hops)} must lie in 1..K = {s.K}")
        return self


class DepoTokenizeParams(TokenizeParams):
    loss: Literal["answers", "all"] = Field(
        "answers", description="answers: loss only on each <ans> marker and its answer's symbols (the paper's);"
        " all: every token (the released code's comment: similar results, a factor slower)")


class DepoProbeParams(Section):
    instances: int = Field(ge=2, description="test instances (n = N) whose <ans> positions are probed")
    train_fraction: float = Field(gt=0.0, lt=1.0, description="share of those instances fitting the probes; the rest scores them")
    steps: int = Field(gt=0, description="full-batch Adam steps per linear probe")
    lr: float = Field(gt=0.0)
    batch_size: int = Field(gt=0, description="instances per forward pass collecting hidden states")
    control: bool = Field(description="also probe a randomly initialised model of the same shape")


class DepoEvaluateParams(Section):
    instances: int = Field(gt=0, description="test instances (n = N) scored, every query of each (min(queries, N) per instance)")
    batch_size: int = Field(gt=0, description="prompts per greedy batch, instances per teacher-forced batch")
    control: bool = Field(description="also score a randomly initialised model of the same shape")


PARAMS = WorldParams(generate=DepoGenerateParams, tokenize=DepoTokenizeParams, probe=DepoProbeParams,
                     evaluate=DepoEvaluateParams)
