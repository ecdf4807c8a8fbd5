"""Training throughput of physlm's loop on this machine: tokens/s of `physlm.train.train`.

    python benchmarks/bench_train.py [--depth 4 --width 128 --heads 4 --context 256 --batch 32 --micro 16 --steps 40 --threads 2]

Runs the real training loop (AdamW, clipping, accumulation, deterministic CPU kernels) on random windows and
reports the median tokens/s of the logged steps after a warm-up, plus the model's FLOPs per token.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from physlm.model import GPT, GPTConfig
from physlm.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in (("depth", 4), ("width", 128), ("heads", 4), ("context", 256), ("batch", 32), ("micro", 16),
                          ("steps", 40), ("threads", 2), ("vocab", 5)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model_cfg = GPTConfig(vocab_size=args.vocab, context=args.context, depth=args.depth, width=args.width, heads=args.heads)
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch, micro_batch_size=args.micro, lr=1e-3, log_every=5,
                      eval_every=10**9, checkpoint_every=10**9)
    windows = np.random.default_rng(0).integers(0, args.vocab, size=(512, args.context + 1), dtype=np.uint16)
    with tempfile.TemporaryDirectory() as tmp:
        result = train(model_cfg, cfg, windows, None, Path(tmp), device=args.device, progress=False)
    rates = [row["tokens_per_s"] for row in result.history[1:]]  # the first window includes warm-up
    params = GPT(model_cfg).num_params()
    print(f"model depth {args.depth} width {args.width} heads {args.heads} context {args.context}: {params:,} params, "
          f"{result.model.flops_per_token():,} FLOPs/token")
    print(f"batch {args.batch} (micro {args.micro}), {args.threads} threads: median {np.median(rates):,.0f} tokens/s "
          f"(min {min(rates):,.0f}, max {max(rates):,.0f}) over {len(rates)} log windows")


if __name__ == "__main__":
    main()
