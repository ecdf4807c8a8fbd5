"""The engine's params schemas: one pydantic model per section the engine reads (no torch here).

`ModelParams` configures `physlm.model` (the `model:` section), `TrainParams` the loop of `physlm.train`
(`train:`), `TokenizeParams` the packing of `physlm.tokenize` (a dataset's `tokenize:`), `DecodingParams`
generation by `physlm.sampling`, `LoraParams` the adapters of `physlm.lora`. A world subclasses the
sections it extends (the biography world adds its regimes to `TrainParams`, the text worlds their token
`units` to `TokenizeParams`) and owns the rest of its schemas in `physlm/worlds/<world>/params.py`;
`physlm.config` composes them into one model per stage. Every model is strict (unknown keys are errors)
and frozen.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelParams(Section):
    """docs/architectures.md maps these keys to the papers' models (Part 1's variants, Part 4.1's Llama(RoPE),
    Llama(NoPE), reduced RoPE, Canon layers and their ablations)."""

    depth: int = Field(gt=0, description="transformer blocks")
    width: int = Field(gt=0, description="residual stream width")
    heads: int = Field(gt=0, description="attention heads (width must divide)")
    block: Literal["gpt2", "llama"] = Field(
        "gpt2", description="gpt2: pre-LayerNorm block, GELU MLP; llama (Part 4.1): RMSNorm everywhere (eps 1e-6, no"
        " bias), gated SiLU MLP down(silu(gate(x)) * up(x)), no 1/sqrt(2 depth) init scaling")
    pos: Literal["rot", "abs", "rel", "nope", "pos", "uni"] = Field(
        description="rot: rotary (default); abs: learned absolute positions; rel: DeBERTa-style relative;"
        " nope: no positional information (causal mask only); pos: learned position-only attention;"
        " uni: fixed uniform windows of 2^h - 1 previous tokens"
    )
    mlp_ratio: int = Field(ge=0, description="MLP hidden width = mlp_ratio * width (gpt2); llama: 2 * mlp_ratio *"
                           " width // 3 for gate and for up, each (the same parameter count; 4 gives 8/3 width);"
                           " 0 with mlp_hidden 0: no MLP, attention-only blocks (Part 3.3's GPT2^0)")
    mlp_hidden: int = Field(0, ge=0, description="MLP hidden width if > 0, overriding mlp_ratio (llama: of gate and of up)")
    dropout: float = Field(ge=0.0, lt=1.0)
    rope_base: float = Field(gt=1.0)
    rope_dim: int = Field(0, ge=0, description="pos rot only: rotary turns the first rope_dim dims of each head"
                          " (even, <= head dim), the rest carry no position; 0 = all (Part 4.1's reduced RoPE: head dim / 4)")
    canon: str = Field("", pattern="^[ABCD]*$", description="Canon layers (Part 4.1) at these points of every"
                       " block: a subset of ABCD (A before attention, B on q/k/v, C before the MLP, D inside it); '' none")
    canon_kernel: int = Field(4, ge=1, description="tokens each Canon convolution spans (the paper's 4)")
    canon_residual: bool = Field(True, description="Canon(res) h + conv(h); false: Canon(no-res), conv(h) alone")
    canon_activation: bool = Field(False, description="SiLU on each Canon convolution's output, before the residual add")
    tie_embeddings: bool = Field(False, description="the output head shares the token embedding matrix (Part 3.3's"
                                 " tied variant); false: an untied head of its own")

    @model_validator(mode="after")
    def _consistent(self) -> ModelParams:
        """Checks across fields (GPTConfig repeats them; here they name the params key): heads divide the
        width, no Canon point is named twice, and rope_dim fits the head of a rotary model."""
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if len(set(self.canon)) != len(self.canon):
            raise ValueError(f"canon {self.canon!r} names a Canon point twice")
        if self.mlp_ratio == 0 and self.mlp_hidden == 0 and set(self.canon) & set("CD"):
            raise ValueError(f"canon {self.canon!r}: Canon-C and Canon-D sit at the MLP, and mlp_ratio 0 has none")
        head_dim = self.width // self.heads
        if self.rope_dim and self.pos != "rot":
            raise ValueError(f"rope_dim {self.rope_dim} needs pos 'rot' (partial rotary), got pos {self.pos!r}")
        if self.rope_dim % 2 or self.rope_dim > head_dim:
            raise ValueError(f"rope_dim {self.rope_dim} must be even and at most the head dim {head_dim} (width // heads)")
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
                         " (physlm/stream.py; the worlds that stream) instead of the materialized tokens/train.npy")
    stream_workers: int = Field(0, ge=0, description="generator processes of the stream per training process (0 = all cores)")
    doc_mask: bool = Field(False, description="attention stays inside each packed example (starting at <bos>) and"
                           " positions restart there; false: whole windows, as the papers pack")
    seed: int | None = Field(None, ge=0, description="this study's training seed (model init, batch order, dropout,"
                             " the world's data mixing), instead of the shared `seed`; the data keep the dataset's."
                             " Studies equal but for it form a seed group, reported as mean and spread (physlm/report.py)")

    @model_validator(mode="after")
    def _batch_divides(self) -> TrainParams:
        if self.batch_size % self.micro_batch_size:
            raise ValueError(f"batch_size {self.batch_size} is not a multiple of micro_batch_size {self.micro_batch_size}")
        if self.warmup_steps > self.steps:
            raise ValueError(f"warmup_steps {self.warmup_steps} exceeds steps {self.steps}")
        return self


class TokenizeParams(Section):
    context: int = Field(ge=8, description="training window length in tokens")
    pack: Literal["stream", "sentences"] = Field(description="stream: consecutive windows of the sentence stream; sentences: every window starts at a sentence")


class DecodingParams(Section):
    """Evaluation by generation: the decodings to run and the batch."""

    beams: list[int] = Field(min_length=1, description="decoding: 1 = greedy, k > 1 = beam search with k beams")
    batch_size: int = Field(gt=0)

    @model_validator(mode="after")
    def _beams(self) -> DecodingParams:
        if any(b <= 0 for b in self.beams):
            raise ValueError(f"beams must be positive, got {self.beams}")
        return self


class LoraParams(Section):
    rank_qv: int = Field(gt=0, description="rank of the query and value updates (paper 8-16)")
    rank_emb: int = Field(ge=0, description="rank of the input-embedding update (paper 128; 0 = frozen embedding)")
    alpha: float = Field(gt=0.0, description="updates scaled by alpha / rank (paper: 4)")
