"""Post-training quantization for the capacity measurement (SPEC 6.3, P3.3-d: int8 loses nothing, int4 more
than halves the stored bits).

Method: **round-to-nearest (RTN), symmetric, per output channel**. Every row w of a weight matrix (a Linear's
[out, in] weight: one row per output channel; an Embedding's [tokens, width] weight: one row per token) is
replaced by s q with s = max|w| / qmax and q = round(w / s) clamped to [-qmax, qmax], qmax = 2^(b-1) - 1 (127 for
int8, 7 for int4): at most 2^b - 1 distinct values per row, zero exact. The model keeps float tensors holding
the dequantized values (simulated quantization), so the bits are measured by exactly the code that measures the
trained model.

What is quantized: the weight of every `nn.Linear` (attention q/k/v and output projections, MLP, and the untied
output head) and every `nn.Embedding` (the token embedding; absolute or relative position tables where the
model has them): every matrix, which is where nearly all of P lies, including the embedding and head rows the
paper's P counts. Left in float (`float_params`): LayerNorm / RMSNorm gains and biases, Linear biases, Canon
convolution filters, learned per-head offsets; vectors whose count is reported beside the quantized count.
Quantizing the embedding and head too is the stricter reading ("every parameter at b bits"); GPTQ as usually
run (auto_gptq) keeps both in 16 bits, so at tiny widths, where the embedding and head dominate P, this RTN
loses more than GPTQ would.

Why not GPTQ (what the paper used): GPTQ rounds column by column and corrects the remaining columns with the
inverse Hessian of calibration inputs, so it loses less than RTN, especially at int4. auto_gptq (0.7.1, March
2024, its last release) builds CUDA kernels and pulls transformers, accelerate, peft and datasets; torchao
(0.18) ships CPU wheels and int8/int4 weight-only schemes but targets GPU inference and would be a heavy
dependency for one measurement (pip metadata, December 2026; optimum-quanto 0.2.7 is RTN-style too and wants
ninja and huggingface_hub). RTN is the baseline GPTQ improves on (GPTQ minimises each layer's output error on
calibration inputs), so a bits loss measured here is likely larger than GPTQ's would be: an int8 result that
keeps the bits is the stronger statement, an int4 loss is not the paper's number.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

FORMATS = {"int8": 8, "int4": 4}
METHOD = "round-to-nearest, symmetric, per output channel (rows of every Linear and Embedding weight)"


def levels(bits: int) -> int:
    """qmax = 2^(bits-1) - 1: the integers -qmax .. qmax."""
    if bits < 2:
        raise ValueError(f"symmetric quantization needs at least 2 bits, got {bits}")
    return 2 ** (bits - 1) - 1


@torch.no_grad()
def rtn(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """`weight` [rows, ...] quantized per row to `bits` bits and dequantized (same shape and dtype)."""
    qmax = levels(bits)
    w = weight.detach().float().reshape(weight.shape[0], -1)
    scale = w.abs().amax(dim=1, keepdim=True) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row stays zero
    q = torch.clamp(torch.round(w / scale), -qmax, qmax)
    return (q * scale).reshape(weight.shape).to(weight.dtype)


def quantized_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Embedding))]


@torch.no_grad()
def quantize(model: nn.Module, fmt: str) -> tuple[nn.Module, dict]:
    """A copy of `model` with every Linear and Embedding weight RTN-quantized to `fmt` (int8 | int4), and what
    was done: the method, bits, the parameters quantized and kept in float, and the largest weight change."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown quantization {fmt!r}; known: {', '.join(FORMATS)}")
    bits = FORMATS[fmt]
    out = copy.deepcopy(model)
    done, change = set(), 0.0
    for _, module in quantized_modules(out):
        if id(module.weight) in done:  # a tied matrix is quantized once
            continue
        q = rtn(module.weight, bits)
        change = max(change, float((q - module.weight).abs().max()))
        module.weight.copy_(q)
        done.add(id(module.weight))
    quantized = sum(p.numel() for p in out.parameters() if id(p) in done)
    total = sum(p.numel() for p in out.parameters())
    return out.eval(), {"method": METHOD, "bits": bits, "quantized_params": quantized, "float_params": total - quantized,
                        "max_weight_change": change}
