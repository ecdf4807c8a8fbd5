"""LoRA finetuning of a GPT, as Part 3.1 finetunes QA (SPEC 4.2): low-rank updates of the query and value
projections of every block (rank 8-16) and of the input embedding (rank 128), alpha 4.

`apply_lora` returns a deep copy of the model (the original is left untouched) with every original parameter
frozen. Each block's fused `qkv` Linear (rows 0..width are q, width..2width k, 2width..3width v) becomes a
`LoraQKV`: q += (alpha / rank_qv) * B_q A_q x and v += (alpha / rank_qv) * B_v A_v x, k unchanged; the token
embedding becomes a `LowRankEmbedding`: wte[t] += (alpha / rank_emb) * A[t] B. A is random, B is zero, so the
wrapped model starts exactly where the original is; only the A and B matrices train. The wrappers act token by
token, so `model(idx, targets)`, the KV cache and left padding (`pad=`) work as in the plain model.
`merge_lora` folds the updates into a plain GPT (the same logits up to float rounding), which the normal
checkpoint code saves. The content-free schemes ("pos", "uni") have no queries: ValueError.

tests/test_lora.py checks that the wrapped model starts equal, that only the LoRA matrices get gradients,
that merged and unmerged logits agree after training, that cached generation equals uncached (with mixed
prompt lengths), and the trainable parameter count against the formula.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from physlm.model import CONTENT_FREE, GPT

__all__ = ["LoraConfig", "LoraQKV", "LowRankEmbedding", "apply_lora", "merge_lora", "trainable_parameters"]


@dataclass(frozen=True)
class LoraConfig:
    rank_qv: int = 8  # rank of the query and value updates in every block (paper: 8 or 16)
    rank_emb: int = 128  # rank of the token-embedding update (paper: 128); 0: the embedding stays frozen as is
    alpha: float = 4.0  # each update is scaled by alpha / its rank

    def __post_init__(self) -> None:
        if self.rank_qv < 1 or self.rank_emb < 0:
            raise ValueError(f"LoraConfig: rank_qv={self.rank_qv} must be >= 1 and rank_emb={self.rank_emb} >= 0")
        if not self.alpha > 0:
            raise ValueError(f"LoraConfig.alpha={self.alpha} must be > 0")


def _down(rank: int, fan_in: int, gen: torch.Generator) -> nn.Parameter:
    """A [rank, fan_in], initialised as nn.Linear initialises its weight."""
    a = nn.Parameter(torch.empty(rank, fan_in))
    nn.init.kaiming_uniform_(a, a=math.sqrt(5), generator=gen)
    return a


class LoraQKV(nn.Module):
    """A frozen fused qkv Linear plus low-rank updates of its q and v rows."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, gen: torch.Generator):
        super().__init__()
        width = base.in_features
        self.base, self.scale = base, alpha / rank
        self.q_a, self.v_a = _down(rank, width, gen), _down(rank, width, gen)
        self.q_b, self.v_b = nn.Parameter(torch.zeros(width, rank)), nn.Parameter(torch.zeros(width, rank))

    def forward(self, x: Tensor) -> Tensor:
        dq = (x @ self.q_a.T) @ self.q_b.T
        dv = (x @ self.v_a.T) @ self.v_b.T
        return self.base(x) + self.scale * torch.cat((dq, torch.zeros_like(dq), dv), dim=-1)

    def delta(self) -> Tensor:
        """The update of the weight [3 * width, width]."""
        dq, dv = self.q_b @ self.q_a, self.v_b @ self.v_a
        return self.scale * torch.cat((dq, torch.zeros_like(dq), dv), dim=0)


class LowRankEmbedding(nn.Module):
    """A frozen token embedding plus a trainable low-rank update: row t of the table gains scale * A[t] @ B,
    A [vocab, rank], B [rank, width]. One factor starts at zero, so the wrapped embedding starts exactly as the
    original. The one low-rank embedding update of physlm: LoRA's (`lora`) and the probes' (`probe`,
    `physlm.probing.frozen_with_update`)."""

    def __init__(self, base: nn.Embedding, a: Tensor, b: Tensor, scale: float = 1.0):
        super().__init__()
        self.base, self.scale = base.requires_grad_(False), scale
        self.a, self.b = nn.Parameter(a), nn.Parameter(b)

    @classmethod
    def lora(cls, base: nn.Embedding, rank: int, alpha: float, gen: torch.Generator) -> LowRankEmbedding:
        """LoRA's: A ~ N(0, 1) drawn on the CPU from `gen`, B = 0, scale alpha / rank (move it to the base's
        device after)."""
        return cls(base, torch.randn(base.num_embeddings, rank, generator=gen), torch.zeros(rank, base.embedding_dim),
                   alpha / rank)

    @classmethod
    def probe(cls, base: nn.Embedding, rank: int, gen: torch.Generator) -> LowRankEmbedding:
        """The probes' (SPEC 2.4, 4.3): A = 0, B ~ N(0, 1/rank) from `gen`, scale 1, on the base's device."""
        like = {"device": base.weight.device, "dtype": base.weight.dtype}
        b = (torch.randn(rank, base.embedding_dim, generator=gen) / math.sqrt(rank)).to(**like)
        return cls(base, torch.zeros(base.num_embeddings, rank, **like), b)

    @property
    def weight(self) -> Tensor:
        """The frozen table, so code that reads `wte.weight` (sizes, FLOPs, the device) keeps working."""
        return self.base.weight

    def forward(self, idx: Tensor) -> Tensor:
        return self.base(idx) + self.scale * (F.embedding(idx, self.a) @ self.b)

    def delta(self) -> Tensor:
        """The update of the table [vocab, width]."""
        return self.scale * (self.a @ self.b)


def apply_lora(model: GPT, cfg: LoraConfig, seed: int = 0) -> GPT:
    """A copy of `model` whose only trainable parameters are the LoRA matrices (module docstring); the A
    matrices are drawn on the CPU from a generator seeded with `seed`, then moved to the model's device."""
    if model.cfg.pos in CONTENT_FREE:
        raise ValueError(f"LoRA updates queries and values: GPTConfig.pos={model.cfg.pos!r} has no query projection")
    out = copy.deepcopy(model).requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)
    like = next(model.parameters())
    for block in out.blocks:
        block.attn.qkv = _placed(LoraQKV(block.attn.qkv, cfg.rank_qv, cfg.alpha, gen), like)
    if cfg.rank_emb:
        out.wte = _placed(LowRankEmbedding.lora(out.wte, cfg.rank_emb, cfg.alpha, gen), like)
    return out


def _placed(module: nn.Module, like: Tensor) -> nn.Module:
    """The module with its LoRA matrices on the device and in the dtype of `like` (the base is there already)."""
    for p in module.parameters(recurse=False):
        p.data = p.data.to(device=like.device, dtype=like.dtype)
    return module


@torch.no_grad()
def merge_lora(model: GPT) -> GPT:
    """A plain GPT (every parameter trainable) with the LoRA updates folded into the weights."""
    out = copy.deepcopy(model)
    for block in out.blocks:
        if isinstance(block.attn.qkv, LoraQKV):
            block.attn.qkv = _merged(block.attn.qkv.base, block.attn.qkv.delta())
    if isinstance(out.wte, LowRankEmbedding):
        out.wte = _merged(out.wte.base, out.wte.delta())
    return out.requires_grad_(True)


def _merged(base: nn.Module, delta: Tensor) -> nn.Module:
    base.weight += delta.to(base.weight.dtype)
    return base


def trainable_parameters(model: nn.Module) -> int:
    """How many parameter values the optimizer updates (requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
