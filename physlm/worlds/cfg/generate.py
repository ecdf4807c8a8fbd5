"""The grammar world's generate step: sentences with their parse-tree labels to Parquet
(`data/<dataset>/raw/{train,test}.parquet`, columns in the package docstring), plus grammar.txt (and
bags.json) for the judge and stream.json for streamed training (`physlm.stream.stream_record`)."""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from tqdm import tqdm

from physlm.io import write_json
from physlm.stream import RECORD as STREAM_RECORD, stream_record
from physlm.worlds.cfg import grammar as cfg
from physlm.worlds.cfg.corrupt import perturb_sentences
from physlm.worlds.cfg.implicit import Bags, bags_to_json, emit_sentences, save_bags
from physlm.worlds.cfg.language import resolve_bags, resolve_grammar
from physlm.worlds.cfg.params import CfgGenerateParams, PerturbParams

CHUNK = 2000


def cfg_frame(sentences: list[cfg.Sentence], start: int, terminals: list[list[int]], tokens: list[list[int]] | None,
              perturbed: list[bool]) -> pl.DataFrame:
    """One chunk of rows; `tokens` is None for a plain grammar (the tokens are the terminals)."""
    columns = {"index": list(range(start, start + len(sentences))), "tokens": terminals if tokens is None else tokens}
    schema = {"index": pl.Int64, "tokens": pl.List(pl.UInt16)}
    if tokens is not None:
        columns["terminals"], schema["terminals"] = terminals, pl.List(pl.UInt16)
    columns |= {"ancestors": [s.ancestors for s in sentences], "boundaries": [s.boundaries for s in sentences], "perturbed": perturbed}
    schema |= {"ancestors": pl.List(pl.List(pl.UInt16)), "boundaries": pl.List(pl.List(pl.UInt8)), "perturbed": pl.Boolean}
    return pl.DataFrame(columns, schema=schema)


@dataclass(frozen=True)
class _CfgChunk:
    """Sentences lo .. lo+n-1 of a split: a pure function of these fields (every sentence has its own RNG)."""

    grammar: cfg.Grammar
    seed: int
    lo: int
    n: int
    perturb: PerturbParams | None
    bags: Bags | None

    def __call__(self) -> pl.DataFrame:
        sentences = cfg.sample_sentences(self.grammar, self.seed, self.lo, self.n)
        terminals, flags = [s.tokens for s in sentences], [False] * self.n
        if self.perturb is not None:
            p = self.perturb
            terminals, flags = perturb_sentences(terminals, fraction=p.fraction, rate=p.rate,
                                                 num_terminals=len(self.grammar.terminals), seed=self.seed, start=self.lo, kind=p.kind)
        tokens = emit_sentences(self.bags, terminals, self.seed, self.lo) if self.bags is not None else None
        return cfg_frame(sentences, self.lo, terminals, tokens, flags)


def _run_chunk(chunk: _CfgChunk) -> pl.DataFrame:
    return chunk()


def _counted(bar: tqdm, frame: pl.DataFrame) -> pl.DataFrame:
    bar.update(frame.height)
    return frame


def sample_split(grammar: cfg.Grammar, seed: int, start: int, count: int, desc: str,
                 perturb: PerturbParams | None = None, bags: Bags | None = None, workers: int = 1) -> pl.DataFrame:
    """Sentences start .. start+count-1: sampled, then perturbed (terminals), then emitted (implicit), in
    chunks of CHUNK sentences on `workers` spawned processes (in-process for 1 worker or 1 chunk); the frame
    does not depend on `workers` (tests/test_cfg.py)."""
    chunks = [_CfgChunk(grammar, seed, lo, min(CHUNK, start + count - lo), perturb, bags)
              for lo in range(start, start + count, CHUNK)]
    with tqdm(total=count, desc=desc, unit="sent", mininterval=2.0) as bar:
        if workers == 1 or len(chunks) == 1:
            frames = [_counted(bar, chunk()) for chunk in chunks]
        else:
            with multiprocessing.get_context("spawn").Pool(min(workers, len(chunks))) as pool:
                frames = [_counted(bar, frame) for frame in pool.imap(_run_chunk, chunks)]
    return pl.concat(frames)


def generate(params: CfgGenerateParams, seed: int, out_dir: Path) -> dict[str, int]:
    """Write train/test Parquet, grammar.txt (and bags.json) into `out_dir`; returns row counts."""
    grammar = resolve_grammar(params.grammar)
    bags = resolve_bags(params, grammar)
    (out_dir / "grammar.txt").write_text(cfg.format_grammar(grammar))
    if bags is not None:
        save_bags(bags, out_dir / "bags.json")
    write_json(out_dir / STREAM_RECORD, stream_record("cfg", seed, params, grammar=cfg.format_grammar(grammar),
                                                      bags=bags_to_json(bags) if bags is not None else ""))
    splits = {"train": (0, params.train_sentences), "test": (params.train_sentences, params.test_sentences)}
    for split, (start, count) in splits.items():
        frame = sample_split(grammar, seed, start, count, f"generate {split}", params.perturb if split == "train" else None, bags,
                             workers=params.workers or os.cpu_count() or 1)
        frame.write_parquet(out_dir / f"{split}.parquet", compression="zstd", statistics=False)
    return {split: count for split, (_, count) in splits.items()}


