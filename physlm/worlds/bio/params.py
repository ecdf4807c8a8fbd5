"""The biography world's params schemas: `datasets.<d>.generate`, `datasets.<d>.tokenize`, its `train`
regimes (mixed training, QA finetuning), `probe.bio` and `evaluate.bio` (each deep-merged with a study's
overrides)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from physlm.params import DecodingParams, LoraParams, Section, TokenizeParams, TrainParams
from physlm.worlds import WorldParams


class BioPoolParams(Section):
    first_names: int = Field(400, gt=0, le=400)
    middle_names: int = Field(400, gt=0, le=400)
    last_names: int = Field(1000, gt=0, le=1000)
    cities: int = Field(200, gt=0, le=200, description="birth cities")
    universities: int = Field(300, gt=0, le=300)
    majors: int = Field(100, gt=0, le=100)
    employers: int = Field(263, gt=0, le=263, description="work cities are the employers' headquarters")


class BioGenerateParams(Section):
    people: int = Field(ge=2, description="N individuals; ids below N // 2 are P_train (QA finetuning), the rest P_test")
    text: Literal["bioS", "bioR"] = Field(description="bioS: templates; bioR: the paraphrasing generator (SPEC 4.1)")
    variant: str = Field(description="augmentation: single, multi5, permute, multi5+permute, fullname, couple, ... (SPEC 4.1)")
    order: Literal["paper", "code"] = Field(description="sentence order of un-permuted bioS: the paper's, or the release's")
    pronouns: Literal["random", "parity"] = Field(description="random: he/she/they (paper); parity: he even ids, she odd (code)")
    pools: BioPoolParams = Field(description="the first k values of each pool (SPEC sizes by default)")
    celebrities: int = Field(0, ge=0, description="celebrity experiment: this many extra people written with"
                             " celebrity_variant; QA finetunes on them (P_train) and tests on the others (P_test)")
    celebrity_variant: str = Field("multi5+permute", description="the celebrities' augmentation (paper: multi5+permute)")

    @model_validator(mode="after")
    def _variants(self) -> BioGenerateParams:
        from physlm.bios.people import parse_variant

        for name in (self.variant, self.celebrity_variant):
            variant = parse_variant(name)  # ValueError names the bad part
            if self.text == "bioR" and (variant.permute or variant.couple):
                raise ValueError(f"variant {name!r}: bioR supports only multiM and fullname")
        return self


class BioTokenizeParams(TokenizeParams):
    units: Literal["words", "values"] = Field(
        description="words: one token per word of a value (closer to BPE); values: every name part and attribute"
        " value one token (a tiny model memorises far fewer tokens)")


class FinetuneParams(Section):
    steps: int = Field(gt=0, description="QA finetuning steps on the P_train questions")
    lr: float = Field(gt=0.0)
    weight_decay: float = Field(ge=0.0)
    batch_size: int = Field(gt=0)
    lora: LoraParams | None = Field(None, description="null: full finetune; else LoRA on q/v + an embedding update")


class BioTrainParams(TrainParams):
    mix: float = Field(0.0, ge=0.0, lt=1.0, description="mixed training: the share of training windows that are"
                       " P_train QA windows (paper QA_r 0.8); 0 = biographies only")
    finetune: FinetuneParams | None = Field(None, description="after training, finetune on the P_train QA (null: none)")

    @field_validator("stream")
    @classmethod
    def _no_stream(cls, stream: bool) -> bool:
        if stream:
            raise ValueError("a biography population is fixed knowledge, not a stream: bio studies need stream: false")
        return stream


class BioProbeParams(Section):
    people: int = Field(gt=1, description="people per probe split: P_train people fit the probes, P_test people score them")
    p_steps: int = Field(ge=0, description="P-probing steps (0 disables; paper 30k)")
    p_rank: int = Field(gt=0, description="P-probing embedding-update rank (paper 2)")
    q_steps: int = Field(ge=0, description="Q-probing steps (0 disables; paper 30k)")
    q_rank: int = Field(gt=0, description="Q-probing embedding-update rank (paper 16 bioS, 32 bioR)")
    layers: list[int] = Field(min_length=1, description="residual streams probed: after block l (0 = the embedding);"
                              " -1 = the last block (the paper's)")
    lr: float = Field(gt=0.0)
    weight_decay: float = Field(ge=0.0)
    control: bool = Field(description="also probe a randomly initialised model of the same shape")


class BioEvaluateParams(DecodingParams):
    people: int = Field(gt=0, description="people per split (P_train, P_test) whose six questions are asked")


def check(sections: Mapping[str, Any]) -> None:
    """A study's sections against each other: every probed layer within the model (0..depth, or -1)."""
    depth, layers = sections["train"].model.depth, sections["probe"].probe.layers
    if not all(layer == -1 or 0 <= layer <= depth for layer in layers):
        raise ValueError(f"probe.layers {layers} must lie in 0..{depth} (model.depth) or be -1 (the last block)")


PARAMS = WorldParams(generate=BioGenerateParams, tokenize=BioTokenizeParams, probe=BioProbeParams,
                     evaluate=BioEvaluateParams, train=BioTrainParams, check=check)
