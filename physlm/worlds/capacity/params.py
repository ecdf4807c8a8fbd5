"""The capacity world's params schemas: `datasets.<d>.generate` (the data kind, bioD's six numbers or bioS's pronoun
choice, and the pools), `datasets.<d>.tokenize` (how many writings of each paragraph the train split holds; bioS's
token units), its `train` key `exposures`,
`probe.capacity` and `evaluate.capacity` (each deep-merged with a study's overrides; `evaluate.capacity.quantize`
defaults to none)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from physlm.params import Section, TokenizeParams, TrainParams
from physlm.worlds import WorldParams

MAX_VOCAB = 65_535  # token ids are stored as uint16


class NamePoolParams(Section):
    first_names: int = Field(400, gt=0, le=400)
    middle_names: int = Field(400, gt=0, le=400)
    last_names: int = Field(1000, gt=0, le=1000)
    # bioS kinds only (the biography pools, physlm.bios.people.PoolSizes); bioD refuses them
    cities: int = Field(200, gt=0, le=200, description="bioS: birth cities")
    universities: int = Field(300, gt=0, le=300, description="bioS")
    majors: int = Field(100, gt=0, le=100, description="bioS")
    employers: int = Field(263, gt=0, le=263, description="bioS: work cities are the employers' headquarters")


BIOS_POOLS = ("cities", "universities", "majors", "employers")
KNOBS = ("K", "C", "D", "L", "T")  # bioD's


class CapacityGenerateParams(Section):
    data: Literal["bioD", "bioS", "bioS_simple"] = Field(
        "bioD", description="bioD(N, K, C, D, L, T); bioS(N): biographies whose templates and sentence order are re-drawn"
        " for every writing; bioS_simple(N): one fixed biography per person (SPEC 6.1)")
    N: int = Field(gt=0, description="people, names drawn without replacement from the N0 = first x middle x last candidates")
    K: int | None = Field(None, gt=0, description="bioD: attributes ID 1 .. ID K (paper 1..50)")
    C: int | None = Field(None, gt=0, description="bioD: chunks per value (paper 1..50)")
    D: int | None = Field(None, gt=0, description="bioD: diversity: distinct chunks per attribute (paper 10..10,000), at most T^L")
    L: int | None = Field(None, gt=0, description="bioD: tokens per chunk (paper 1..50)")
    T: int | None = Field(None, gt=0, description="bioD: value tokens (paper 20..40,000)")
    pools: NamePoolParams = Field(default_factory=NamePoolParams, description="the first k names of each pool (N0 = their"
                                  " product); bioS kinds also the first k cities, universities, majors and employers")
    pronouns: Literal["parity", "random"] | None = Field(
        None, description="bioS kinds (default parity): parity, he / she by id parity (the released code; 1 bit per person,"
        " S0 as the paper's); random, he / she / they (a factor 3 in S0)")
    workers: int = Field(0, ge=0, description="generator processes (0 = all cores); the output does not depend on it")
    junk_people: int = Field(0, ge=0, description="bioD: N': other people of the same world (names disjoint from the N, values"
                             " from the same diversity sets) whose paragraphs are the junk of Part 3.3's junk-data study"
                             " (raw/junk.parquet; tokenize.junk_fraction mixes them in); 0: none")
    stream_sample: int = Field(4, ge=1, description="streamed windows whose paragraphs tokenize records"
                               " (tokens/stream_sample.parquet; the train split streamed in exposure rounds, train.stream)")

    @model_validator(mode="after")
    def _consistent(self) -> CapacityGenerateParams:
        p = self.pools
        n0 = p.first_names * p.middle_names * p.last_names
        if self.N > n0:
            raise ValueError(f"N = {self.N} exceeds N0 = {n0} (pools {p.first_names} x {p.middle_names} x {p.last_names})")
        if self.data != "bioD":
            return self._bios()
        missing = [k for k in KNOBS if getattr(self, k) is None]
        bios_only = [f"pools.{k}" for k in BIOS_POOLS if k in p.model_fields_set] + (["pronouns"] if self.pronouns else [])
        if missing or bios_only:
            raise ValueError(f"data bioD needs {', '.join(missing)}" if missing else
                             f"{', '.join(bios_only)}: bioS data only (data is bioD)")
        if self.N + self.junk_people > n0:
            raise ValueError(f"N + junk_people = {self.N} + {self.junk_people} exceeds N0 = {n0} (pools {p.first_names} x"
                             f" {p.middle_names} x {p.last_names}): every junk person needs a name no useful person has")
        if self.D > self.T**self.L:
            raise ValueError(f"D = {self.D} exceeds T^L = {self.T}^{self.L}, the distinct chunks")
        if self.T + self.K + p.first_names + p.middle_names + p.last_names + 7 > MAX_VOCAB:
            raise ValueError(f"T = {self.T} and K = {self.K} make a vocabulary over {MAX_VOCAB} tokens (uint16 ids)")
        return self

    def _bios(self) -> CapacityGenerateParams:
        given = [k for k in KNOBS if getattr(self, k) is not None]
        if given:
            raise ValueError(f"data {self.data} takes no {', '.join(given)} (bioD's knobs K, C, D, L, T): remove them")
        if self.junk_people:
            raise ValueError(f"junk_people: the junk-data study is built on bioD only, not on {self.data}")
        return self


DOMAIN_TOKEN = "<useful>"  # the domain token of the junk-data study (tokenize.domain_token)


class CapacityTokenizeParams(TokenizeParams):
    copies: int = Field(1, gt=0, description="writings of each person's paragraph in the train split, each with its own"
                        " sentence order (set it to the studies' exposures so that every exposure is a new writing)")
    units: Literal["words", "values"] = Field("words", description="bioS kinds: words, a token per word of a value;"
                                              " values, a token per name part and per value (physlm.bios.text);"
                                              " bioD: leave it out")
    junk_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="bioD: share of the train split's paragraph tokens that are"
                                 " junk: writings of generate.junk_people's junk people (needs junk_people > 0), each a new"
                                 " writing, junk person k mod N' for the k-th; 0: no junk")
    domain_token: bool = Field(False, description=f"prepend the token {DOMAIN_TOKEN} to every useful paragraph (train"
                               " split, test split, and the probe's and evaluation's prompts), never to a junk one:"
                               " the paper's mitigation; needs junk_fraction > 0")

    @model_validator(mode="after")
    def _junk(self) -> CapacityTokenizeParams:
        if self.domain_token and not self.junk_fraction:
            raise ValueError("domain_token marks the useful paragraphs apart from the junk: it needs junk_fraction > 0")
        return self


class CapacityTrainParams(TrainParams):
    exposures: float | None = Field(None, gt=0, description="times each person's paragraph is trained on (SPEC 11.2):"
                                    " steps = ceil(exposures x N x tokens per paragraph / (batch_size x context)),"
                                    " replacing `steps`; null: train `steps` updates")


class CapacityProbeParams(Section):
    people: int = Field(ge=4, description="people whose name states are probed (at most N)")
    attributes: int = Field(gt=0, description="bioD: probe the first chunk of attributes 1..this (at most K); bioS: the"
                            " value class of the first this of birth date (its month), birth city, university, major,"
                            " employer, work city (at most 6)")
    train_fraction: float = Field(gt=0.0, lt=1.0, description="share of the people that fits each probe; the rest scores it")
    steps: int = Field(gt=0, description="full-batch Adam steps of each linear probe")
    lr: float = Field(gt=0.0)
    batch_size: int = Field(gt=0)
    control: bool = Field(description="also probe a randomly initialised model of the same shape")


class CapacityEvaluateParams(Section):
    people: int = Field(ge=0, description="people whose losses are measured (0 = all N, the formula's)")
    batch_size: int = Field(gt=0)
    control: bool = Field(description="also measure a randomly initialised model of the same shape")
    quantize: list[Literal["int8", "int4"]] = Field(
        default_factory=list, description="also measure copies of the trained model with every Linear and Embedding"
        " weight round-to-nearest quantized (symmetric, per output channel) to these formats (physlm/worlds/capacity/quantize.py)")

    @model_validator(mode="after")
    def _distinct(self) -> CapacityEvaluateParams:
        if len(set(self.quantize)) != len(self.quantize):
            raise ValueError(f"quantize lists a format twice: {self.quantize}")
        return self


PARAMS = WorldParams(generate=CapacityGenerateParams, tokenize=CapacityTokenizeParams, probe=CapacityProbeParams,
                     evaluate=CapacityEvaluateParams, train=CapacityTrainParams)
