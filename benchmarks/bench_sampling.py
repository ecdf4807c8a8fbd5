"""Evaluation-style sampling speed: sequences/s of `physlm.sampling.generate`, measured side by side.

    python benchmarks/bench_sampling.py [--context 512] [--batch 16] [--prompt 16] [--mixed 32] [--threads 2] [--device cpu]

1. Equal-length prompts filling the context (the cfg evaluations' shape): batched with the KV cache vs naive
   sampling that recomputes the whole prefix at every step (`use_cache=False`).
2. Mixed-length prompts (iGSM-like: `--mixed` prompts of 150-300 tokens, 100-token continuations): the
   left-padded batches (`mix_lengths=True`, the default) vs the older grouping into batches of one length
   (`mix_lengths=False`) vs one prompt at a time (`batch_size=1`), all with the KV cache.
Every path of a part must give the same samples for the same seed (checked and printed): that is what
`generate` promises.
"""

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

from physlm.device import pick_device
from physlm.model import GPT, GPTConfig
from physlm.sampling import generate

VOCAB = 256


def timed(label: str, count: int, run: Callable[[], list[list[int]]]) -> tuple[float, list[list[int]]]:
    """Wall seconds and the samples; also prints the process's CPU seconds (all threads), which a loaded
    machine inflates less than the wall clock."""
    start, cpu = time.perf_counter(), time.process_time()
    samples = run()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    tokens = sum(len(s) for s in samples)
    print(f"  {label:34} {seconds:8.2f} s ({cpu:7.2f} CPU s)  {count / seconds:8.2f} sequences/s  "
          f"{tokens / seconds:9.0f} tokens/s")
    return seconds, samples


def equal_lengths(model: GPT, args: argparse.Namespace) -> None:
    prompts = [[(7 * i + j) % VOCAB for j in range(args.prompt)] for i in range(args.batch)]
    new = args.context - args.prompt + 1
    print(f"1. {args.batch} prompts of {args.prompt} tokens, {new} new tokens each (context {args.context}), batch {args.batch}")
    kw = {"max_new_tokens": new, "temperature": 1.0, "eos_id": -1, "seed": 0, "batch_size": args.batch}
    cached, a = timed("batched, KV cache", args.batch, lambda: generate(model, prompts, **kw))
    naive, b = timed("batched, full recompute", args.batch, lambda: generate(model, prompts, use_cache=False, **kw))
    print(f"  KV cache speed-up {naive / cached:.1f}x; identical samples: {a == b}")


def mixed_lengths(model: GPT, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(150, 301, size=args.mixed)
    prompts = [rng.integers(0, VOCAB, size=n).tolist() for n in lengths]
    print(f"2. {args.mixed} prompts of {lengths.min()}-{lengths.max()} tokens ({len(set(lengths.tolist()))} distinct lengths), "
          f"100 new tokens each, batch {args.batch}")
    kw = {"max_new_tokens": 100, "temperature": 1.0, "eos_id": -1, "seed": 0}
    padded, a = timed("mixed-length batches (left-padded)", args.mixed,
                      lambda: generate(model, prompts, batch_size=args.batch, **kw))
    grouped, b = timed("one length per batch (before)", args.mixed,
                       lambda: generate(model, prompts, batch_size=args.batch, mix_lengths=False, **kw))
    alone, c = timed("one prompt at a time", args.mixed, lambda: generate(model, prompts, batch_size=1, **kw))
    print(f"  left-padded vs one length per batch {grouped / padded:.1f}x, vs one at a time {alone / padded:.1f}x; "
          f"identical samples: {a == b == c}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--prompt", type=int, default=16, help="part 1 prompt length; the rest of the context is sampled")
    parser.add_argument("--mixed", type=int, default=32, help="part 2: number of mixed-length prompts (0 skips it)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = pick_device(args.device)
    model = GPT(GPTConfig(vocab_size=VOCAB, context=args.context, depth=4, width=128, heads=4)).to(device)
    print(f"model depth 4 width 128 heads 4 vocab {VOCAB} ({model.num_params():,} params) on {device}, "
          f"{args.threads} threads; torch {torch.__version__}, {platform.platform()}")
    equal_lengths(model, args)
    if args.mixed:
        mixed_lengths(model, args)


if __name__ == "__main__":
    main()
