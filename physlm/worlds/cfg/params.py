"""The grammar world's params schemas: `datasets.<d>.generate`, `datasets.<d>.tokenize` (the engine's
`TokenizeParams`), `probe.cfg` and `evaluate.cfg` (each deep-merged with a study's overrides)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from physlm.params import Section, TokenizeParams
from physlm.worlds import WorldParams


class RandomGrammarParams(Section):
    seed: int
    symbols_per_level: list[int] = Field(min_length=2, description="root level first (must be 1), terminals last")
    rules_per_symbol: tuple[int, int]
    rule_length: tuple[int, int]
    no_duplicate_symbol: bool = False
    no_duplicate_sequence: bool = True


class PerturbParams(Section):
    fraction: float = Field(ge=0.0, le=1.0, description="share of training sentences perturbed (a Bernoulli draw per sentence)")
    rate: float = Field(gt=0.0, le=1.0, description="per-token corruption rate inside a perturbed sentence")
    kind: Literal["replace", "delete", "insert", "swap"] = "replace"


class ImplicitParams(Section):
    bag_size: int = Field(gt=0, description="vocabulary tokens each terminal can emit (uniformly)")
    overlap: int = Field(ge=0, description="tokens each bag shares with the next terminal's bag (0: disjoint bags)")
    seed: int = Field(ge=0, description="which token ids go in which bag")


class CfgGenerateParams(Section):
    grammar: str | RandomGrammarParams = Field(description="published name (cfg3f, ...), a grammar file path, or a random-grammar spec")
    train_sentences: int = Field(gt=0)
    test_sentences: int = Field(gt=0)
    perturb: PerturbParams | None = Field(None, description="corrupt a share of the TRAINING sentences (Part 1 robustness); test stays clean")
    implicit: ImplicitParams | None = Field(None, description="implicit grammar: each terminal emits a token from its own bag (SPEC 1.5)")
    workers: int = Field(1, ge=0, description="sampling processes (0 = all cores); the output does not depend on it")
    stream_sample: int = Field(64, ge=0, description="streamed windows whose sentences tokenize records (tokens/stream_sample.parquet)")


class MultiheadProbeParams(Section):
    steps: int = Field(ge=0, description="Adam steps per probe (0 disables the multi-head probe)")
    lr: float = Field(gt=0.0)
    heads: int = Field(gt=0, description="position-mixing heads")
    rank: int = Field(gt=0, description="width of each head's linear map of the hidden state")
    pos_dim: int = Field(gt=0, description="dimension of the trainable position embeddings that form the mixing weights")
    layers: Literal["last", "all"] = Field(description="probe the last layer only (the paper's) or every layer")


class EncoderControlParams(Section):
    steps: int = Field(ge=0, description="masked-LM training steps of the encoder-only control (0 disables it)")
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0.0)


class CfgProbeParams(Section):
    sentences: int = Field(gt=1, description="held-out test sentences whose hidden states are probed")
    train_fraction: float = Field(gt=0.0, lt=1.0, description="share of those sentences used to fit the probes")
    steps: int = Field(gt=0, description="full-batch optimisation steps per probe")
    lr: float = Field(gt=0.0)
    weight_decay: float = Field(ge=0.0)
    control: bool = Field(description="also probe a randomly initialised model of the same shape")
    attention_sentences: int = Field(ge=0, description="held-out sentences for the attention analysis (0 disables)")
    multihead: MultiheadProbeParams
    encoder: EncoderControlParams


class RobustParams(Section):
    sentences: int = Field(ge=0, description="held-out sentences whose prefix is corrupted (0 disables)")
    rate: float = Field(gt=0.0, le=1.0, description="per-token corruption rate of the prefix")
    kind: Literal["replace", "delete", "insert", "swap"]
    temperatures: list[float] = Field(min_length=1)


class CfgEvaluateParams(Section):
    samples: int = Field(gt=0, description="cut0 generations (prompt = <bos> only)")
    prefix_samples: int = Field(ge=0, description="cut50 generations (prompt = a test sentence prefix)")
    prefix: int = Field(gt=0, description="prefix length in tokens for the cut-prefix evaluation")
    temperature: float = Field(ge=0.0)
    batch_size: int = Field(gt=0)
    control_samples: int = Field(ge=0, description="cut0 generations of a random-init model (0 disables)")
    kl_sentences: int = Field(ge=0, description="held-out sentences for the KL to the exact next-token distribution (0 disables)")
    unseen_prompts: bool = Field(description="cut-prefix prompts, KL sentences and corrupted prompts only from test sentences that"
                                 " are not training sentences (a small grammar repeats sentences across the splits); false: all"
                                 " test sentences; the overlap is reported either way")
    robust: RobustParams


PARAMS = WorldParams(generate=CfgGenerateParams, tokenize=TokenizeParams, probe=CfgProbeParams, evaluate=CfgEvaluateParams)
