"""Typed, strict views of `params.yaml`, one per pipeline stage.

`params.yaml` holds shared defaults at the top (`seed`, `model`, `train`, and per-world `probe`/`evaluate`
defaults), a `datasets:` mapping and a `studies:` mapping. A dataset names its `world` and carries its
`generate` and `tokenize` sections (stages generate and tokenize run once per dataset). A study names its
`world` and the dataset it trains on (`data`), plus overrides (possibly empty mappings) of `model`,
`train`, `probe` and `evaluate` (stages train, probe and evaluate run once per study). Several studies can
share one dataset: a study matrix (attention variants, model sizes) trains side by side on the same data.

Each stage reads exactly the sections listed in `FIELDS` (`declared_params` spells them as `dvc.yaml` must
declare them as the stage's `params`; `tests/test_config.py` checks the two agree), merges study overrides
over the shared defaults, and validates the result with a frozen pydantic model that forbids unknown keys.
Any problem raises `ParamsError` with one line naming the offending key, before the stage writes anything.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from physlm.errors import ParamsError

# ---------------------------------------------------------------------------------------------------------
# Section models


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelParams(Section):
    depth: int = Field(gt=0, description="transformer blocks")
    width: int = Field(gt=0, description="residual stream width")
    heads: int = Field(gt=0, description="attention heads (width must divide)")
    pos: Literal["rot", "abs", "rel", "pos", "uni"] = Field(
        description="rot: rotary (default); abs: learned absolute positions; rel: DeBERTa-style relative;"
        " pos: learned position-only attention; uni: fixed uniform windows of 2^h - 1 previous tokens"
    )
    mlp_ratio: int = Field(gt=0, description="MLP hidden width = mlp_ratio * width")
    dropout: float = Field(ge=0.0, lt=1.0)
    rope_base: float = Field(gt=1.0)
    canon: str = Field("", pattern="^[ABCD]*$", description="Canon layers (Part 4.1) at these points of every"
                       " block: a subset of ABCD (A before attention, B on q/k/v, C before the MLP, D inside it); '' none")
    canon_kernel: int = Field(4, ge=1, description="tokens each Canon convolution spans (the paper's 4)")

    @model_validator(mode="after")
    def _consistent(self) -> ModelParams:
        """Checks across fields (GPTConfig repeats them; here they name the params key): heads divide the
        width, and no Canon point is named twice."""
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if len(set(self.canon)) != len(self.canon):
            raise ValueError(f"canon {self.canon!r} names a Canon point twice")
        return self


class TrainParams(Section):
    steps: int = Field(gt=0)
    batch_size: int = Field(gt=0, description="global batch in sequences")
    micro_batch_size: int = Field(gt=0, description="sequences per device per micro-step")
    lr: float = Field(gt=0.0)
    min_lr_ratio: float = Field(ge=0.0, le=1.0)
    warmup_steps: int = Field(ge=0)
    decay: Literal["cosine", "linear", "constant"]
    weight_decay: float = Field(ge=0.0)
    beta1: float = Field(ge=0.0, lt=1.0)
    beta2: float = Field(ge=0.0, lt=1.0)
    eps: float = Field(gt=0.0)
    grad_clip: float = Field(ge=0.0, description="0 disables clipping")
    eval_every: int = Field(gt=0)
    eval_batches: int = Field(gt=0)
    checkpoint_every: int = Field(gt=0)
    log_every: int = Field(gt=0)
    compile: bool = Field(description="torch.compile the model (CUDA only)")
    parallel: Literal["ddp", "fsdp"] = Field(description="with nproc > 1: ddp replicates the model, fsdp shards it (FSDP2)")
    stream: bool = Field(False, description="train on windows generated on the fly from the dataset's world and seed"
                         " (physlm/stream.py; cfg and igsm) instead of the materialized tokens/train.npy")
    stream_workers: int = Field(0, ge=0, description="generator processes of the stream per training process (0 = all cores)")
    doc_mask: bool = Field(False, description="attention stays inside each packed example (starting at <bos>) and"
                           " positions restart there; false: whole windows, as the papers pack")

    @model_validator(mode="after")
    def _batch_divides(self) -> TrainParams:
        if self.batch_size % self.micro_batch_size:
            raise ValueError(f"batch_size {self.batch_size} is not a multiple of micro_batch_size {self.micro_batch_size}")
        return self


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


class TokenizeParams(Section):
    context: int = Field(ge=8, description="training window length in tokens")
    pack: Literal["stream", "sentences"] = Field(description="stream: consecutive windows of the sentence stream; sentences: every window starts at a sentence")


class IgsmTokenizeParams(TokenizeParams):
    units: Literal["names", "words"] = Field(
        description="names: every item/category name is one token; words: one token per word of a name (closer to"
        " the papers' BPE, where names are several tokens)")


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
    robust: RobustParams


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
                               " ood (ood_ops), reask (op = max_op test problems asked about another parameter)")
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


class DecodingParams(Section):
    """Evaluation by generation: the decodings to run and the batch."""

    beams: list[int] = Field(min_length=1, description="decoding: 1 = greedy, k > 1 = beam search with k beams")
    batch_size: int = Field(gt=0)

    @model_validator(mode="after")
    def _beams(self) -> DecodingParams:
        if any(b <= 0 for b in self.beams):
            raise ValueError(f"beams must be positive, got {self.beams}")
        return self


class IgsmEvaluateParams(DecodingParams):
    problems: int = Field(gt=0, description="problems generated per eval set (at most the dataset's eval_problems)")
    control: bool = Field(description="also score a randomly initialised model (greedy, test set)")
    workers: int = Field(ge=0, description="processes running the eval sets side by side on a CPU (0 = all cores)")


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
        from physlm.worlds.bio.people import parse_variant

        for name in (self.variant, self.celebrity_variant):
            variant = parse_variant(name)  # ValueError names the bad part
            if self.text == "bioR" and (variant.permute or variant.couple):
                raise ValueError(f"variant {name!r}: bioR supports only multiM and fullname")
        return self


class BioTokenizeParams(TokenizeParams):
    units: Literal["words", "values"] = Field(
        description="words: one token per word of a value (closer to BPE); values: every name part and attribute"
        " value one token (a tiny model memorises far fewer tokens)")


class LoraParams(Section):
    rank_qv: int = Field(gt=0, description="rank of the query and value updates (paper 8-16)")
    rank_emb: int = Field(ge=0, description="rank of the input-embedding update (paper 128; 0 = frozen embedding)")
    alpha: float = Field(gt=0.0, description="updates scaled by alpha / rank (paper: 4)")


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


World = Literal["cfg", "igsm", "bio"]
GENERATE: dict[str, type[Section]] = {"cfg": CfgGenerateParams, "igsm": IgsmGenerateParams, "bio": BioGenerateParams}
PROBE: dict[str, type[Section]] = {"cfg": CfgProbeParams, "igsm": IgsmProbeParams, "bio": BioProbeParams}
EVALUATE: dict[str, type[Section]] = {"cfg": CfgEvaluateParams, "igsm": IgsmEvaluateParams, "bio": BioEvaluateParams}
TOKENIZE: dict[str, type[Section]] = {"cfg": TokenizeParams, "igsm": IgsmTokenizeParams, "bio": BioTokenizeParams}
TRAIN: dict[str, type[Section]] = {"bio": BioTrainParams}  # other worlds: TrainParams
# stage -> world-specific section
WORLD_SECTIONS = {"generate": GENERATE, "tokenize": TOKENIZE, "train": TRAIN, "probe": PROBE, "evaluate": EVALUATE}

# ---------------------------------------------------------------------------------------------------------
# Stage models: exactly what each stage reads


class GenerateStage(Section):
    seed: int
    world: World
    generate: CfgGenerateParams


class TokenizeStage(Section):
    world: World
    tokenize: TokenizeParams


class TrainStage(Section):
    seed: int
    model: ModelParams
    train: TrainParams


class ProbeStage(Section):
    seed: int
    world: World
    probe: CfgProbeParams


class EvaluateStage(Section):
    seed: int
    world: World
    evaluate: CfgEvaluateParams


class ReportStage(Section):
    studies: dict[str, Any]


# Where each field of a stage's model comes from: (shared default key, key inside the stage's dataset or
# study entry). A field with both is the shared default deep-merged with the entry's override ("{world}" is
# the entry's world). SCOPE says whether a stage runs per dataset, per study, or once.
FIELDS: dict[str, dict[str, tuple[str | None, str | None]]] = {
    "generate": {"seed": ("seed", None), "world": (None, "world"), "generate": (None, "generate")},
    "tokenize": {"world": (None, "world"), "tokenize": (None, "tokenize")},
    "train": {"seed": ("seed", None), "model": ("model", "model"), "train": ("train", "train")},
    "probe": {"seed": ("seed", None), "world": (None, "world"), "probe": ("probe.{world}", "probe")},
    "evaluate": {"seed": ("seed", None), "world": (None, "world"), "evaluate": ("evaluate.{world}", "evaluate")},
    "report": {"studies": ("studies", None)},
}
SCOPE: dict[str, str | None] = {"generate": "datasets", "tokenize": "datasets", "train": "studies", "probe": "studies",
                                "evaluate": "studies", "report": None}
SINGULAR = {"datasets": "dataset", "studies": "study"}
ENTRY_KEYS = {"datasets": {"world", "generate", "tokenize"}, "studies": {"world", "data", "model", "train", "probe", "evaluate"}}
STAGE_MODELS: dict[str, type[Section]] = {
    "generate": GenerateStage,
    "tokenize": TokenizeStage,
    "train": TrainStage,
    "probe": ProbeStage,
    "evaluate": EvaluateStage,
    "report": ReportStage,
}


@functools.cache
def stage_model(stage: str, world: str) -> type[Section]:
    """The stage's model for a world: STAGE_MODELS' (grammar world) with the world's own section swapped in."""
    base = STAGE_MODELS[stage]
    sections = WORLD_SECTIONS.get(stage)
    if sections is None or world not in sections or world == "cfg":
        return base
    return create_model(f"{world.capitalize()}{base.__name__}", __base__=base, **{stage: (sections[world], ...)})


def declared_params(stage: str) -> set[str]:
    """The params keys `stage` must declare in dvc.yaml, spelled as there ("${key}", "${item.world}")."""
    keys: set[str] = set()
    for shared, own in FIELDS[stage].values():
        if shared:
            keys.add(shared.replace("{world}", "${item.world}"))
        if own:
            keys.add(f"{SCOPE[stage]}.${{key}}.{own}")
    return keys


# ---------------------------------------------------------------------------------------------------------
# Loading


def read_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Parse params.yaml; ParamsError if it is missing or not a mapping."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML ({err})".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: top level must be a mapping")
    return data


def lookup(params: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted key; ParamsError naming the key if any part is missing."""
    node: Any = params
    for i, part in enumerate(dotted.split(".")):
        if not isinstance(node, dict) or part not in node:
            raise ParamsError(f"params.yaml: missing key '{'.'.join(dotted.split('.')[: i + 1])}'")
        node = node[part]
    return node


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: override's leaves replace base's; nested mappings merge recursively."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def entry_names(params: dict[str, Any], scope: str) -> list[str]:
    """The names under `datasets:` or `studies:`."""
    entries = lookup(params, scope)
    if not isinstance(entries, dict) or not entries:
        raise ParamsError(f"params.yaml: '{scope}' must be a non-empty mapping")
    return list(entries)


def study_names(params: dict[str, Any]) -> list[str]:
    return entry_names(params, "studies")


def _entry(params: dict[str, Any], scope: str, name: str) -> tuple[str, dict[str, Any]]:
    """(world, entry) of a dataset or study, checking its name, keys, world and (for a study) dataset."""
    names = entry_names(params, scope)
    if name not in names:
        raise ParamsError(f"params.yaml: unknown {SINGULAR[scope]} '{name}'; {scope}: {', '.join(names)}")
    entry = lookup(params, f"{scope}.{name}")
    if not isinstance(entry, dict):
        raise ParamsError(f"params.yaml: '{scope}.{name}' must be a mapping")
    for key in entry:
        if key not in ENTRY_KEYS[scope]:
            raise ParamsError(f"params.yaml: {scope}.{name}.{key}: unknown key; a {SINGULAR[scope]} has {', '.join(sorted(ENTRY_KEYS[scope]))}")
    world = lookup(params, f"{scope}.{name}.world")
    if world not in GENERATE:
        raise ParamsError(f"params.yaml: {scope}.{name}.world: unknown world {world!r}; known: {', '.join(GENERATE)}")
    if scope == "studies":
        data = lookup(params, f"studies.{name}.data")
        datasets = entry_names(params, "datasets")
        if data not in datasets:
            raise ParamsError(f"params.yaml: studies.{name}.data: unknown dataset {data!r}; datasets: {', '.join(datasets)}")
        if lookup(params, f"datasets.{data}.world") != world:
            raise ParamsError(f"params.yaml: studies.{name}.world: {world!r} differs from its dataset's world"
                              f" (datasets.{data}.world = {lookup(params, f'datasets.{data}.world')!r})")
    return world, entry


def data_name(study: str, params_path: str | Path = "params.yaml") -> str:
    """The dataset a study trains on (its `data` key), checked."""
    params = read_params(params_path)
    _entry(params, "studies", study)
    return lookup(params, f"studies.{study}.data")


def stage_raw(params: dict[str, Any], stage: str, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The merged, unvalidated input of a stage for a dataset or study, and for each field path the params.yaml
    key it came from."""
    scope = SCOPE[stage]
    world = _entry(params, scope, name)[0] if scope else ""
    raw: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for field, (shared, own) in FIELDS[stage].items():
        shared = shared.format(world=world) if shared else None
        own = f"{scope}.{name}.{own}" if own else None
        if shared and own:
            base, override = lookup(params, shared), lookup(params, own)
            for where, value in ((shared, base), (own, override)):
                if not isinstance(value, dict):
                    raise ParamsError(f"params.yaml: '{where}' must be a mapping (use {{}} for no overrides)")
            raw[field] = merge(base, override)
            origin[field] = own  # unknown keys can only have been written in one of them; blame the entry
            origin |= {f"{field}.{k}": f"{shared}.{k}" for k in base}
            origin |= {f"{field}.{k}": f"{own}.{k}" for k in override}
        else:
            key = shared or own
            raw[field] = lookup(params, key)
            origin[field] = key
    return raw, origin


def _key_name(loc: tuple[Any, ...], origin: dict[str, str]) -> str:
    """Map a pydantic error location to the params.yaml key a user should edit."""
    parts = [str(p) for p in loc]
    for n in range(len(parts), 0, -1):
        head = ".".join(parts[:n])
        if head in origin:
            return ".".join([origin[head], *parts[n:]])
    return ".".join(parts) or "params.yaml"


def load_stage(stage: str, name: str = "", params_path: str | Path = "params.yaml") -> Section:
    """Validate the sections `stage` declares for dataset or study `name` (see SCOPE); ParamsError with one
    line naming the key."""
    if stage not in STAGE_MODELS:
        raise ParamsError(f"unknown stage '{stage}'; stages: {', '.join(STAGE_MODELS)}")
    params = read_params(params_path)
    raw, origin = stage_raw(params, stage, name)
    world = _entry(params, SCOPE[stage], name)[0] if SCOPE[stage] else "cfg"
    try:
        return stage_model(stage, world).model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        loc = tuple(p for p in first["loc"] if not str(p).startswith("function-after"))
        loc = _strip_union(loc)
        value = first.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        raise ParamsError(f"params.yaml: {_key_name(loc, origin)}: {first['msg']}{shown}") from None


def _strip_union(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's union-branch names ("str", "RandomGrammarParams") from an error location."""
    return tuple(p for p in loc if not (isinstance(p, str) and (p[:1].isupper() or p in ("str", "int", "float"))))
