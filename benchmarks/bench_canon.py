"""Canon layers (Part 4.1, `model.canon`): what they cost per training step and per sampled token.

    python benchmarks/bench_canon.py                  # about two minutes on 2 cores
    python benchmarks/bench_canon.py --width 768 --depth 12 --heads 12 --context 512 --batch 8 --device cuda
    python benchmarks/bench_canon.py --block llama --pos rot --rope-dim 8     # Part 4.1's Llama, reduced RoPE
    python benchmarks/bench_canon.py --block llama --pos nope --no-canon-residual --canon-kernel 3

For each Canon set (none, AC, AB, ABCD) on one model shape it measures, in the same run and process:
- train ms/step: forward + backward + AdamW on random windows, with the doc mask (`segment_start`, the
  iGSM demo's training) and without;
- sample ms/token: greedy decoding of `--new` tokens after a prompt of half the context, one token per step
  through the KV cache (which carries each Canon point's last inputs), batch `--batch`;
- each time as a ratio to the model without Canon (the reference, same shapes, same run); each time is the
  median over `--rounds` rounds that visit every set in turn, since this VM's speed drifts by 10-20% from
  one minute to the next (single passes gave AC anywhere from +1% to +24%).
The architecture flags (`--block`, `--pos`, `--rope-dim`, `--canon-kernel`, `--no-canon-residual`,
`--canon-activation`; docs/architectures.md) apply to every set alike, so each ratio is Canon's cost on that
architecture. Defaults are the iGSM demo's shape (params.yaml `model`, context 256, batch 16, vocabulary 1,734). The
paper reports +5.8% (AC) and +12.4% / +14.1% forward / backward (ABCD) for a 1.3B Llama on an H100 (SPEC
7.1): tiny models on a CPU pay far more, since a depthwise convolution costs memory traffic, not FLOPs.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from physlm.model import BLOCKS, GPT, POSITIONS, GPTConfig
from physlm.sampling import generate


def train_ms(model: GPT, idx: torch.Tensor, segment_start: int | None, steps: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for i in range(steps + 3):
        if i == 3:
            sync(idx.device)
            start = time.perf_counter()
        _, loss = model(idx[:, :-1], idx[:, 1:], segment_start=segment_start)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync(idx.device)
    return (time.perf_counter() - start) / steps * 1000


def sample_ms(model: GPT, prompts: list[list[int]], new: int) -> float:
    model.eval()
    generate(model, prompts[:2], max_new_tokens=2, temperature=0.0, eos_id=-1, seed=0)  # warm-up
    sync(next(model.parameters()).device)
    start = time.perf_counter()
    generate(model, prompts, max_new_tokens=new, temperature=0.0, eos_id=-1, seed=0, batch_size=len(prompts))
    sync(next(model.parameters()).device)
    model.train()
    return (time.perf_counter() - start) / new * 1000


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=1734)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=6, help="timed training steps per configuration and round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds over every set; each time is the median")
    ap.add_argument("--new", type=int, default=32, help="sampled tokens per configuration")
    ap.add_argument("--sets", default=",AC,AB,ABCD", help="comma-separated Canon sets; the first is the reference")
    ap.add_argument("--block", default="gpt2", choices=sorted(BLOCKS))
    ap.add_argument("--pos", default="rot", choices=sorted(POSITIONS))
    ap.add_argument("--rope-dim", type=int, default=0, help="rotary on the first dims of each head (0: all)")
    ap.add_argument("--canon-kernel", type=int, default=4)
    ap.add_argument("--no-canon-residual", dest="canon_residual", action="store_false", help="Canon(no-res)")
    ap.add_argument("--canon-activation", action="store_true", help="SiLU after each Canon convolution")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(2, args.vocab, (args.batch, args.context + 1), generator=gen)
    idx[:, :: max(args.context // 2, 1)] = 1  # two packed examples per window for the doc-mask timing
    idx = idx.to(device)
    prompts = idx[:, : args.context // 2].tolist()
    arch = {"block": args.block, "pos": args.pos, "rope_dim": args.rope_dim, "canon_kernel": args.canon_kernel,
            "canon_residual": args.canon_residual, "canon_activation": args.canon_activation}
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"device {device}; depth {args.depth}, width {args.width}, context {args.context}, batch {args.batch}; "
          + ", ".join(f"{k} {v}" for k, v in arch.items()))
    print(f"{'canon':>6} {'params':>9} {'train ms':>9} {'x':>6} {'masked ms':>10} {'x':>6} {'sample ms/tok':>14} {'x':>6}")
    models = {}
    for canon in args.sets.split(","):
        torch.manual_seed(0)
        models[canon] = GPT(GPTConfig(vocab_size=args.vocab, context=args.context, depth=args.depth, width=args.width,
                                      heads=args.heads, canon=canon, **arch)).to(device)
    runs: dict[str, list[tuple[float, float, float]]] = {canon: [] for canon in models}
    for _ in range(args.rounds):  # interleaved: a slow spell of the machine hits every set alike
        for canon, model in models.items():
            runs[canon].append((train_ms(model, idx, None, args.steps), train_ms(model, idx, 1, args.steps),
                                sample_ms(model, prompts, args.new)))
    reference = [statistics.median(col) for col in zip(*runs[next(iter(models))])]
    for canon, model in models.items():
        times = [statistics.median(col) for col in zip(*runs[canon])]
        ratios = [t / r for t, r in zip(times, reference)]
        print(f"{canon or '-':>6} {model.num_params():>9,} {times[0]:>9.0f} {ratios[0]:>6.2f} {times[1]:>10.0f} "
              f"{ratios[1]:>6.2f} {times[2]:>14.1f} {ratios[2]:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
