"""Streaming training data: can the world generator keep up with training? (issue 6, item 5)

    python benchmarks/bench_stream.py                 # about 2 minutes on 2 cores
    python benchmarks/bench_stream.py --seconds 10 --mfu 0.5

For three streams — the igsm_demo dataset (context 256, `sentences`, one token per name), iGSM-med
(Part 2.1 App. F: op <= 15, 20 edges, context 768, `stream`, one token per word) and the published cfg3f
grammar (Part 1: context 512, `stream`) — it measures, in one run:
- stream tokens/s: `physlm.stream.Producer` making micro-batches of 16 windows on 1 worker and on all cores
  (timed from the first micro-batch, so the spawn start-up is excluded);
- train tokens/s: `physlm.train.train` with the params.yaml `model` at the stream's context and vocabulary,
  batch 16, on random windows, and the same loop fed by the stream on all cores (its tokens/s and
  data_wait: the share of time the loop waited for data, ~0 when the stream keeps up);
- ratio = stream (all cores) / train; above 1 the stream keeps up with this machine's training.
For a GPU it prints an ESTIMATE, not a measurement: the tokens/s GPT2-12-12 consumes on one H200 at the
given MFU (`GPT.flops_per_token` and the bf16 peak of `physlm.device.PEAK_BF16_TFLOPS`), and how many
cores at the measured 1-worker rate would make that many tokens.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from physlm.worlds.cfg.params import CfgGenerateParams
from physlm.worlds.igsm.params import IgsmGenerateParams
from physlm.device import PEAK_BF16_TFLOPS
from physlm.worlds.igsm.tokenize import vocabulary
from physlm.worlds.cfg.language import resolve_grammar
from physlm.io import write_json
from physlm.model import GPT, GPTConfig
from physlm.worlds.igsm.presets import IGSM_LEVELS
from physlm.stream import Producer, Stream, StreamSpec, stream_record
from physlm.worlds.cfg.tokenize import cfg_vocab
from physlm.train import TrainConfig, train
from physlm.worlds.cfg.grammar import format_grammar

ROOT = Path(__file__).resolve().parents[1]
MICRO = 16  # windows per micro-batch, in the stream and in training


def spec(tmp: Path, name: str, world: str, generate, context: int, pack: str, units: str = "") -> StreamSpec:
    """A stream as the train stage loads it: the tokens directory's stream.json and meta.json."""
    tokens = tmp / name
    tokens.mkdir()
    if world == "igsm":
        record, vocab_size = stream_record("igsm", 0, generate), vocabulary(units).size
    else:
        grammar = resolve_grammar(generate.grammar)
        record, vocab_size = stream_record("cfg", 0, generate, grammar=format_grammar(grammar), bags=""), cfg_vocab(len(grammar.terminals)).size
    write_json(tokens / "stream.json", record)
    write_json(tokens / "meta.json", {"world": world, "context": context, "pack": pack, "vocab_size": vocab_size,
                                      "bos_id": 0, "eos_id": 1, "units": units})
    return StreamSpec.load(tokens)


def streams(tmp: Path) -> dict[str, StreamSpec]:
    demo = yaml.safe_load((ROOT / "params.yaml").read_text())["datasets"]["igsm_demo"]
    med = IGSM_LEVELS["med"]
    med_generate = IgsmGenerateParams(**med["generate"], fmt="pq", split_rule="paper", train_problems=1, eval_problems=1,
                                      workers=1)
    return {
        "igsm_demo": spec(tmp, "igsm_demo", "igsm", IgsmGenerateParams(**demo["generate"]), demo["tokenize"]["context"],
                          demo["tokenize"]["pack"], demo["tokenize"]["units"]),
        "iGSM-med": spec(tmp, "igsm_med", "igsm", med_generate, med["context"], "stream", "words"),
        "cfg3f": spec(tmp, "cfg3f", "cfg", CfgGenerateParams(grammar="cfg3f", train_sentences=1, test_sentences=1), 512,
                      "stream"),
    }


def stream_rate(s: StreamSpec, workers: int, seconds: float) -> float:
    """Tokens/s (context tokens per window, as training counts them) of micro-batches made on `workers`."""
    rows = ([j * MICRO + r for r in range(MICRO)] for j in itertools.count())
    producer = Producer(s, rows, workers)
    try:
        next(producer)
        began, batches = time.perf_counter(), 0
        while time.perf_counter() - began < seconds:
            next(producer)
            batches += 1
        return batches * MICRO * s.context / (time.perf_counter() - began)
    finally:
        producer.close()


def train_rate(s: StreamSpec, model: dict, steps: int, source) -> tuple[float, float]:
    """(median tokens/s, median data_wait) of `steps` training updates of batch MICRO on `source`."""
    cfg = GPTConfig(vocab_size=s.vocab_size, context=s.context, **model)
    train_cfg = TrainConfig(steps=steps, batch_size=MICRO, micro_batch_size=MICRO, lr=1e-3, log_every=2,
                            eval_every=steps, checkpoint_every=steps)
    with tempfile.TemporaryDirectory() as out:
        history = train(cfg, train_cfg, source, None, Path(out), progress=False).history[1:]  # first row: warm-up
    return statistics.median(r["tokens_per_s"] for r in history), statistics.median(r["data_wait"] for r in history)


def needed_on_h200(s: StreamSpec, mfu: float) -> float:
    """Estimated tokens/s GPT2-12-12 trains at on one H200 at `mfu`."""
    flops = GPT(GPTConfig(vocab_size=s.vocab_size, context=s.context, depth=12, width=768, heads=12)).flops_per_token()
    return mfu * PEAK_BF16_TFLOPS["H200"] * 1e12 / flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="timing window of each stream measurement")
    parser.add_argument("--steps", type=int, default=7, help="training updates per train measurement")
    parser.add_argument("--mfu", type=float, default=0.4, help="MFU assumed for the H200 estimate")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    model = yaml.safe_load((ROOT / "params.yaml").read_text())["model"]
    print(f"{platform.platform()}, {cores} CPUs, 1-min load average {os.getloadavg()[0]:.1f} at start; torch"
          f" {torch.__version__}, {torch.get_num_threads()} threads; model {model}")
    print(f"| stream | context | stream tok/s, 1 worker | stream tok/s, {cores} workers | train tok/s (arrays) |"
          " ratio stream/train | train tok/s on the stream | data_wait | est. H200 need (GPT2-12-12) | est. cores for it |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, s in streams(Path(tmp)).items():
            one, every = stream_rate(s, 1, args.seconds), stream_rate(s, cores, args.seconds)
            windows = np.random.default_rng(0).integers(2, s.vocab_size, (4 * MICRO, s.width)).astype(np.uint16)
            trained, _ = train_rate(s, model, args.steps, windows)
            streamed, wait = train_rate(s, model, args.steps, Stream(s, cores))
            need = needed_on_h200(s, args.mfu)
            print(f"| {name} | {s.context} | {one:,.0f} | {every:,.0f} | {trained:,.0f} | {every / trained:.1f}x |"
                  f" {streamed:,.0f} | {wait:.3f} | {need:,.0f} at MFU {args.mfu} (estimated) | {need / one:.1f} (estimated) |")


if __name__ == "__main__":
    main()
