"""Sampling speed with and without the KV cache: tokens/s for a batch of prompts filling a context.

    python benchmarks/bench_sampling.py [--context 512] [--batch 16] [--threads 2] [--device cpu]

Both paths must produce identical samples (checked here too); the cache turns each step from a forward over
the whole sequence into a forward over one token.
"""

import argparse
import time

import torch

from physlm.device import pick_device
from physlm.model import GPT, GPTConfig
from physlm.sampling import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--prompt", type=int, default=16, help="prompt length; the rest of the context is sampled")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = pick_device(args.device)
    model = GPT(GPTConfig(vocab_size=256, context=args.context, depth=4, width=128, heads=4)).to(device)
    prompts = [[(7 * i + j) % 256 for j in range(args.prompt)] for i in range(args.batch)]
    new_tokens = args.context - args.prompt + 1
    seconds, samples = {}, {}
    for use_cache in (True, False):
        start = time.perf_counter()
        samples[use_cache] = generate(model, prompts, max_new_tokens=new_tokens, temperature=1.0, eos_id=-1, seed=0,
                                      batch_size=args.batch, use_cache=use_cache)
        seconds[use_cache] = time.perf_counter() - start
        rate = args.batch * new_tokens / seconds[use_cache]
        print(f"use_cache={use_cache!s:5}  {seconds[use_cache]:7.2f} s  {rate:9.0f} tokens/s")
    print(f"speedup {seconds[False] / seconds[True]:.1f}x at context {args.context}, batch {args.batch},"
          f" device {device}; identical samples: {samples[True] == samples[False]}")


if __name__ == "__main__":
    main()
