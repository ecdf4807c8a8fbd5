"""A physlm decoder as a `transformers` causal LM, for the exports no native architecture computes exactly:
Canon layers at points A-D of every block (Part 4.1), NoPE, rotary on only the first `rope_dim` dims of each
head with the Llama block, learned absolute positions with the Llama block (configuration_physlm_canon.py).

It computes what physlm's own model computes (physlm/model.py), written again here so that it needs neither
physlm nor anything but torch and transformers:

    x = embed_tokens(ids) (+ embed_positions(positions) with position "abs")
    every layer:  h = input_layernorm(x) -> [canonA] -> q_proj, k_proj, v_proj -> [canonB on q|k|v]
                  -> rotary on q, k (position "rot": first rope_dim dims, rotate-half) -> causal softmax(q k^T / sqrt(d))
                  -> o_proj;  x = x + that
                  h = post_attention_layernorm(x) -> [canonC] -> MLP;  x = x + that
                  MLP llama: gate_proj, up_proj -> [canonD on gate|up] -> down_proj(silu(gate) * up)
                  MLP gpt2:  up_proj -> [canonD] -> down_proj(gelu(.))
    logits = lm_head(norm(x))

A Canon layer is a causal depthwise convolution over the last canon_kernel tokens (zero before the start),
silu on its output with canon_activation, added to its input with canon_residual: the official LlamaCanon's
definition and weight layout ([channels, 1, kernel], the last tap weighing the current token).

Limits: no KV cache (generation recomputes the whole sequence at every step: exact, and cheap at physlm's
sizes); no padding (an attention_mask must be all ones: physlm's own left padding gives each row its own
positions, which this file does not reproduce); at most max_position_embeddings tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_physlm_canon import PhyslmCanonConfig


class PhyslmCanonLayer(nn.Conv1d):
    """h' = h + conv(h) (canon_residual), conv(h) alone otherwise; silu on conv(h) with canon_activation."""

    def __init__(self, channels: int, config: PhyslmCanonConfig):
        super().__init__(channels, channels, config.canon_kernel, groups=channels, bias=config.canon_bias)
        self.residual, self.activation = config.canon_residual, config.canon_activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, T, channels]
        past = self.kernel_size[0] - 1
        bias = None if self.bias is None else self.bias.to(x.dtype)
        y = F.conv1d(F.pad(x.transpose(1, 2), (past, 0)), self.weight.to(x.dtype), bias, groups=x.size(-1))
        y = y.transpose(1, 2)
        if self.activation:
            y = F.silu(y)
        return x + y if self.residual else y


def canon(config: PhyslmCanonConfig, point: str, channels: int) -> PhyslmCanonLayer | None:
    return PhyslmCanonLayer(channels, config) if point in config.canon_set else None


class PhyslmRMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight, normalised in float32 and cast back before the weight."""

    def __init__(self, width: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * F.rms_norm(x.float(), (x.size(-1),), eps=self.eps).to(x.dtype)


def norm(config: PhyslmCanonConfig) -> nn.Module:
    if config.block == "llama":
        return PhyslmRMSNorm(config.hidden_size, config.rms_norm_eps)
    return nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps, bias=config.norm_bias)


def rotate(x: torch.Tensor, positions: torch.Tensor, config: PhyslmCanonConfig) -> torch.Tensor:
    """Rotary on the first r = rope_dim (or head_dim) dims of x [B, H, T, head_dim]: pair (i, i + r/2) turns by
    position * rope_theta^(-2i/r); angles in float64, then cast (as physlm computes them)."""
    r = config.rope_dim or config.head_dim
    inv_freq = config.rope_theta ** (-torch.arange(0, r, 2, dtype=torch.float64, device=x.device) / r)
    angles = torch.outer(positions.to(torch.float64), inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    cos, sin = angles.cos().float().to(x.dtype), angles.sin().float().to(x.dtype)
    turned, rest = x[..., :r], x[..., r:]
    first, second = turned.chunk(2, dim=-1)
    turned = turned * cos + torch.cat((-second, first), dim=-1) * sin
    return torch.cat((turned, rest), dim=-1)


class PhyslmCanonAttention(nn.Module):
    def __init__(self, config: PhyslmCanonConfig):
        super().__init__()
        self.config = config
        width, inner = config.hidden_size, config.num_attention_heads * config.head_dim
        self.q_proj = nn.Linear(width, inner, bias=config.attention_bias)
        self.k_proj = nn.Linear(width, inner, bias=config.attention_bias)
        self.v_proj = nn.Linear(width, inner, bias=config.attention_bias)
        self.o_proj = nn.Linear(inner, width, bias=config.attention_bias)
        self.canonB = canon(config, "B", 3 * inner)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        if self.canonB is not None:
            q, k, v = self.canonB(torch.cat((q, k, v), dim=-1)).chunk(3, dim=-1)
        q, k, v = (t.view(B, T, self.config.num_attention_heads, -1).transpose(1, 2) for t in (q, k, v))
        if self.config.position == "rot":
            q, k = rotate(q, positions, self.config), rotate(k, positions, self.config)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


class PhyslmCanonMLP(nn.Module):
    def __init__(self, config: PhyslmCanonConfig):
        super().__init__()
        self.gated = config.block == "llama"
        width, hidden = config.hidden_size, config.intermediate_size
        if self.gated:
            self.gate_proj = nn.Linear(width, hidden, bias=config.mlp_bias)
        self.up_proj = nn.Linear(width, hidden, bias=config.mlp_bias)
        self.down_proj = nn.Linear(hidden, width, bias=config.mlp_bias)
        self.canonD = canon(config, "D", (2 if self.gated else 1) * hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.gated:
            h = self.up_proj(x)
            return self.down_proj(F.gelu(h if self.canonD is None else self.canonD(h)))
        gate, up = self.gate_proj(x), self.up_proj(x)
        if self.canonD is not None:
            gate, up = self.canonD(torch.cat((gate, up), dim=-1)).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class PhyslmCanonDecoderLayer(nn.Module):
    def __init__(self, config: PhyslmCanonConfig):
        super().__init__()
        self.input_layernorm = norm(config)
        self.canonA = canon(config, "A", config.hidden_size)
        self.self_attn = PhyslmCanonAttention(config)
        self.post_attention_layernorm = norm(config)
        self.canonC = canon(config, "C", config.hidden_size)
        self.mlp = PhyslmCanonMLP(config)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        h = self.input_layernorm(x)
        x = x + self.self_attn(h if self.canonA is None else self.canonA(h), positions)
        h = self.post_attention_layernorm(x)
        return x + self.mlp(h if self.canonC is None else self.canonC(h))


class PhyslmCanonPreTrainedModel(PreTrainedModel):
    config_class = PhyslmCanonConfig
    base_model_prefix = "model"
    _no_split_modules = ["PhyslmCanonDecoderLayer"]


class PhyslmCanonModel(PhyslmCanonPreTrainedModel):
    def __init__(self, config: PhyslmCanonConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        if config.position == "abs":
            self.embed_positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.layers = nn.ModuleList(PhyslmCanonDecoderLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = norm(config)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, output_hidden_states: bool = False) -> tuple[torch.Tensor, tuple]:
        """(the final norm's output [B, T, width], the hidden states: the embedding output, then the residual
        stream after each layer, before the final norm, as physlm's GPT.hidden_states gives them; empty unless
        output_hidden_states)."""
        T = input_ids.size(1)
        if T > self.config.max_position_embeddings:
            raise ValueError(f"{T} tokens exceed the model's {self.config.max_position_embeddings} positions")
        positions = torch.arange(T, device=input_ids.device)
        x = self.embed_tokens(input_ids)
        if self.config.position == "abs":
            x = x + self.embed_positions(positions)
        states = [x]
        for layer in self.layers:
            x = layer(x, positions)
            states.append(x)
        x = self.norm(x)
        return x, tuple(states) if output_hidden_states else ()


class PhyslmCanonForCausalLM(PhyslmCanonPreTrainedModel, GenerationMixin):
    def __init__(self, config: PhyslmCanonConfig):
        super().__init__(config)
        self.model = PhyslmCanonModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, output_hidden_states: bool | None = None,
                **kwargs) -> CausalLMOutputWithPast:
        """Logits [B, T, vocab]; with labels, the mean next-token cross-entropy (labels -100 ignored, shifted
        inside as transformers does). Cache arguments are accepted and ignored (no KV cache)."""
        if input_ids is None:
            raise ValueError("input_ids are required (inputs_embeds are not supported)")
        if attention_mask is not None and not bool(attention_mask.bool().all()):
            raise ValueError("padding is not supported: the attention_mask must be all ones (no KV cache, no pads)")
        x, states = self.model(input_ids, bool(output_hidden_states))
        logits = self.lm_head(x)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits, hidden_states=states or None)


__all__ = ["PhyslmCanonConfig", "PhyslmCanonForCausalLM", "PhyslmCanonModel"]
