"""Training throughput: physlm's GPT vs the HF `transformers` GPT-NeoX of the same shape, in one run, and
physlm's whole training loop.

    pip install -e '.[bench]'   # transformers, the reference
    python benchmarks/bench_train.py   # the demo shape: depth 4, width 128, heads 4, context 256, batch 16
    python benchmarks/bench_train.py --depth 12 --width 768 --heads 12 --context 512 --batch 2 --steps 2 --rounds 3
    python benchmarks/bench_train.py --device cuda --compile --batch 32 ...   # adds MFU

The reference is `GPTNeoXForCausalLM` with rotary on all head dims, sequential (not parallel) residuals, no
attention biases, GELU MLP of 4x width, untied head, SDPA attention: physlm's layout, except that NeoX keeps
its MLP and LayerNorm biases (0.3% more parameters at the demo shape). Both take the same training step on
the same random batches: forward, fp32 cross-entropy of the logits, backward, clip to norm 1, AdamW
(`physlm.train.make_optimizer`: fused on CUDA), under bf16 autocast on CUDA and with deterministic kernels
on CPU, as physlm trains. Rounds alternate (physlm first on even rounds, the reference first on odd ones), each
timed between device synchronisations after a warm-up; the table gives the median tokens/s per model, MFU on
CUDA (FLOPs per token from `GPT.flops_per_token`, the same for both), and the ratio. Then `physlm.train.train`
runs the same shape for --loop-steps updates, data loading and logging included: its tokens/s and data_wait.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from physlm.device import autocast, deterministic, peak_flops, pick_device, synchronize
from physlm.model import GPT, GPTConfig
from physlm.train import TrainConfig, make_optimizer, train

Step = Callable[[Tensor, Tensor], None]


def reference(cfg: GPTConfig) -> nn.Module:
    """HF GPT-NeoX of physlm's shape (module docstring)."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    neox = GPTNeoXConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.width, num_hidden_layers=cfg.depth, num_attention_heads=cfg.heads,
        intermediate_size=cfg.mlp_ratio * cfg.width, max_position_embeddings=cfg.context, rotary_pct=1.0,
        rotary_emb_base=cfg.rope_base, use_parallel_residual=False, attention_bias=False, hidden_act="gelu",
        tie_word_embeddings=False, hidden_dropout=0.0, attention_dropout=0.0, use_cache=False,
    )
    return GPTNeoXForCausalLM._from_config(neox, attn_implementation="sdpa")


def trainer(model: nn.Module, logits_and_loss: Callable[[nn.Module, Tensor, Tensor], Tensor], dev: torch.device,
            compile: bool) -> Step:
    """One training step of `model` on a batch (module docstring); `logits_and_loss` gives the loss."""
    model.train()
    optimizer = make_optimizer(model, TrainConfig(steps=1, batch_size=1, micro_batch_size=1, lr=1e-4), dev)
    forward = torch.compile(model) if compile else model

    def step(x: Tensor, y: Tensor) -> None:
        with autocast(dev):
            loss = logits_and_loss(forward, x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def physlm_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return model(x, y)[1]


def neox_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    logits = model(input_ids=x).logits
    return F.cross_entropy(logits.float().flatten(0, 1), y.flatten())


def timed(step: Step, batches: list[tuple[Tensor, Tensor]], dev: torch.device) -> float:
    """Seconds for one step per batch, between device synchronisations."""
    synchronize(dev)
    began = time.perf_counter()
    for x, y in batches:
        step(x, y)
    synchronize(dev)
    return time.perf_counter() - began


def side_by_side(cfg: GPTConfig, args: argparse.Namespace, dev: torch.device) -> dict[str, list[float]]:
    """tokens/s of each round, per model, alternating."""
    torch.manual_seed(0)
    steps = {"physlm": trainer(GPT(cfg).to(dev), physlm_loss, dev, args.compile),
             "hf-neox": trainer(reference(cfg).to(dev), neox_loss, dev, args.compile)}
    gen = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(args.steps):
        w = torch.randint(0, cfg.vocab_size, (args.batch, cfg.context + 1), generator=gen).to(dev)
        batches.append((w[:, :-1], w[:, 1:]))
    for step in steps.values():  # warm-up (and compilation)
        timed(step, batches[: args.warmup], dev)
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(args.rounds):
        for name in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
            rates[name].append(args.steps * args.batch * cfg.context / timed(steps[name], batches, dev))
    return rates


def loop(cfg: GPTConfig, args: argparse.Namespace, dev: torch.device) -> dict[str, float]:
    """physlm.train.train on random windows: median tokens/s and data_wait of the log windows after the first."""
    windows = np.random.default_rng(0).integers(0, cfg.vocab_size, (512, cfg.context + 1), dtype=np.uint16)
    tc = TrainConfig(steps=args.loop_steps, batch_size=args.batch, micro_batch_size=args.batch, lr=1e-4,
                     log_every=max(1, args.loop_steps // 6), eval_every=10**9, checkpoint_every=10**9,
                     compile=args.compile)
    with tempfile.TemporaryDirectory() as tmp:
        rows = train(cfg, tc, windows, None, Path(tmp), device=dev, progress=False).history[1:]
    keys = [key for key in ("tokens_per_s", "data_wait", "mfu") if key in rows[0]]
    return {key: statistics.median(row[key] for row in rows) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in (("depth", 4), ("width", 128), ("heads", 4), ("context", 256), ("batch", 16), ("vocab", 5),
                          ("steps", 8), ("rounds", 5), ("warmup", 2), ("loop_steps", 60), ("threads", 2)):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=default)
    parser.add_argument("--device", default=None)
    parser.add_argument("--compile", action="store_true", help="torch.compile both models (and the loop on CUDA)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dev = pick_device(args.device)
    cfg = GPTConfig(vocab_size=args.vocab, context=args.context, depth=args.depth, width=args.width, heads=args.heads)
    load = os.getloadavg()[0]
    with deterministic(dev):
        rates = side_by_side(cfg, args, dev)
        looped = loop(cfg, args, dev) if args.loop_steps else {}
    describe(cfg, args, dev, rates, looped, load)


def describe(cfg: GPTConfig, args: argparse.Namespace, dev: torch.device, rates: dict[str, list[float]],
             looped: dict[str, float], load: float) -> None:
    flops = GPT(cfg).flops_per_token()
    peak = peak_flops(dev)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{platform.machine()} CPU"
    print(f"{name}, torch {torch.__version__}, {args.threads} threads, 1-min load {load:.1f} -> "
          f"{os.getloadavg()[0]:.1f}")
    print(f"shape: depth {cfg.depth} width {cfg.width} heads {cfg.heads} context {cfg.context} vocab {cfg.vocab_size},"
          f" batch {args.batch}; {GPT(cfg).num_params():,} params (physlm), {reference(cfg).num_parameters():,}"
          f" (hf-neox); {flops / 1e6:,.1f} MFLOP/token")
    print(f"{args.rounds} alternating rounds of {args.steps} steps{' (compiled)' if args.compile else ''}:")
    print("| model | median tokens/s | min | max |" + (" MFU |" if peak else ""))
    for model, values in rates.items():
        mfu = f" {statistics.median(values) * flops / (peak.tflops * 1e12):.1%} |" if peak else ""
        print(f"| {model} | {statistics.median(values):,.0f} | {min(values):,.0f} | {max(values):,.0f} |{mfu}")
    ratios = [a / b for a, b in zip(rates["physlm"], rates["hf-neox"])]
    each = ", ".join(f"{r:.2f}" for r in ratios)
    print(f"physlm / hf-neox: {statistics.median(ratios):.2f}x (per-round ratios {each})")
    if peak:
        print(f"peak {peak.tflops:g} TFLOP/s for {peak.device}{' (estimated)' if peak.estimated else ''}")
    if looped:
        extra = f", MFU {looped['mfu']:.1%}" if "mfu" in looped else ""
        print(f"physlm.train.train, {args.loop_steps} updates: {looped['tokens_per_s']:,.0f} tokens/s, "
              f"data_wait {looped['data_wait']:.2%}{extra}")


if __name__ == "__main__":
    main()
