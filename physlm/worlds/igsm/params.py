"""The iGSM world's params schemas: `datasets.<d>.generate`, `datasets.<d>.tokenize`, `probe.igsm` and
`evaluate.igsm` (each deep-merged with a study's overrides)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from physlm.params import DecodingParams, Section, TokenizeParams
from physlm.worlds import WorldParams


class IgsmTokenizeParams(TokenizeParams):
    units: Literal["names", "words"] = Field(
        description="names: every item/category name is one token; words: one token per word of a name (closer to"
        " the papers' BPE, where names are several tokens)")


class IgsmGenerateParams(Section):
    max_op: int = Field(gt=0, description="largest op of training problems (iGSM-med 15, iGSM-hard 21)")
    max_edge: int = Field(ge=2, description="largest number of instance parameters / structure edges (med 20, hard 28)")
    max_layers: int = Field(ge=2, le=4, description="category layers per problem drawn from 2..max_layers (paper: 4)")
    max_items: int = Field(ge=2, le=4, description="items per layer drawn from 2..max_items (paper: 4)")
    names: int = Field(0, ge=0, description="items drawn from the first `names` of each sub-category (0 = all, the paper;"
                       " fewer names make each one frequent enough for a short CPU run)")
    fmt: Literal["pq", "qp"] = Field(description="question after (pq) or before (qp) the problem sentences")
    split_rule: Literal["paper", "code", "none"] = Field(
        description="template-hash split: paper = train buckets < 17, test >= 17; code = the released code's 0-15 / 16-22; none = no split")
    train_problems: int = Field(gt=0, description="training problems (op <= max_op, train buckets)")
    eval_problems: int = Field(gt=0, description="problems in each eval set: test (held-out templates), opmax (op = max_op),"
                               " ood (ood_ops), reask (op = max_op test problems asked about another parameter, a held-out template again)")
    ood_ops: list[int] = Field(min_length=1, description="ops of the out-of-distribution eval set (each equally often)")
    workers: int = Field(ge=0, description="generator processes (0 = all cores); the output does not depend on it")
    stream_sample: int = Field(64, ge=0, description="streamed windows whose problems tokenize records (tokens/stream_sample.parquet)")

    @model_validator(mode="after")
    def _ops(self) -> IgsmGenerateParams:
        if any(op <= 0 for op in self.ood_ops):
            raise ValueError(f"ood_ops must be positive, got {self.ood_ops}")
        if self.names and self.names < self.max_items:
            raise ValueError(f"names {self.names} is below max_items {self.max_items} (0 = all names)")
        if self.max_edge < (self.max_layers - 1) * self.max_items:
            raise ValueError(f"max_edge {self.max_edge} is below (max_layers - 1) * max_items = {(self.max_layers - 1) * self.max_items}")
        return self


class IgsmProbeParams(Section):
    properties: list[Literal["nece", "dep", "known", "value", "can_next", "nece_next"]] = Field(min_length=1)
    train_problems: int = Field(gt=0, description="training problems the probes' examples are drawn from")
    test_problems: int = Field(gt=0, description="held-out (test-bucket) problems the probes are scored on")
    picks: int = Field(gt=0, description="random (position, parameter) picks per problem and property (paper: <= 10)")
    rank: int = Field(gt=0, description="rank of the trainable input-embedding update (paper: 8)")
    steps: int = Field(gt=0, description="optimizer steps per probe")
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0.0)
    weight_decay: float = Field(ge=0.0)
    control: bool = Field(description="also probe a randomly initialised model of the same shape")
    workers: int = Field(ge=0, description="processes fitting probes side by side on a CPU (0 = all cores); the same rows")


class IgsmEvaluateParams(DecodingParams):
    problems: int = Field(gt=0, description="problems generated per eval set (at most the dataset's eval_problems)")
    control: bool = Field(description="also score a randomly initialised model (greedy, test set)")
    workers: int = Field(ge=0, description="processes running the eval sets side by side on a CPU (0 = all cores)")


PARAMS = WorldParams(generate=IgsmGenerateParams, tokenize=IgsmTokenizeParams, probe=IgsmProbeParams,
                     evaluate=IgsmEvaluateParams)
