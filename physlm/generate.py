"""World data to Parquet: `data/<dataset>/raw/*.parquet` plus what the judge needs.

iGSM (`generate_igsm`): train.parquet (op <= max_op, training templates) and one file per eval set —
test.parquet (in-distribution, held-out templates), opmax.parquet (op = max_op), ood.parquet (the ood_ops),
reask.parquet (test problems of op = max_op asked about another parameter); the columns are documented in
physlm/worlds/igsm/generator.py and the README. The rest of this docstring is the grammar world's.

Grammar world columns (one row per sentence):
- `index`      the example index; example i is sampled from its own RNG seeded by (seed, i)
- `tokens`     list of terminal ids (1..V)
- `ancestors`  one list per NT level 1..D-1 (level 1 is just below the root): the NT above each token
- `boundaries` same shape: 1 where the token ends its level-l subtree
- `terminals`  (implicit grammars only, `generate.implicit`) the terminal string; `tokens` are then the
               vocabulary tokens 1..M the terminals emitted, each drawn from its terminal's bag (bags.json)
- `perturbed`  True where the sentence was corrupted (`generate.perturb`, training split only): its
               `tokens` are the corrupted ones (`physlm.worlds.cfg.robust.perturb_sentences`), its labels stay the clean
               sentence's (they no longer align with the tokens after `delete`/`insert`)
Test sentences continue the index range after the training ones, so the two splits come from disjoint RNG
streams, and are never perturbed. `grammar.txt` records the grammar (our text format,
`physlm.worlds.cfg.grammar.format_grammar`); `bags.json` the bags of an implicit grammar. `load_language` reads
both back as a `Language`: the judge, exact next-token distributions and vocabulary of the dataset.

Both worlds also write `stream.json` (`physlm.stream.stream_record`): what training needs to stream fresh
windows from the generator instead of reading the materialized train split (`train.stream`).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from tqdm import tqdm

from physlm.config import BioGenerateParams, CfgGenerateParams, IgsmGenerateParams, PerturbParams, RandomGrammarParams
from physlm.errors import DataError
from physlm.io import read_json, read_parquet, write_json
from physlm.worlds.cfg.corrupt import perturb_sentences
from physlm.worlds.cfg import grammar as cfg
from physlm.worlds.cfg.dist import next_token_distributions
from physlm.stream import RECORD as STREAM_RECORD, stream_record
from physlm.worlds.cfg.implicit import Bags, ImplicitJudge, bags_to_json, emit_sentences, load_bags, make_bags, save_bags

IGSM_EVAL_SETS = ("test", "opmax", "ood", "reask")  # written as <eval set>.parquet beside train.parquet

CHUNK = 2000


def resolve_grammar(spec: str | RandomGrammarParams) -> cfg.Grammar:
    if isinstance(spec, str):
        return cfg.load_grammar(spec)
    return cfg.random_grammar(
        seed=spec.seed,
        symbols_per_level=spec.symbols_per_level,
        rules_per_symbol=tuple(spec.rules_per_symbol),
        rule_length=tuple(spec.rule_length),
        no_duplicate_symbol=spec.no_duplicate_symbol,
        no_duplicate_sequence=spec.no_duplicate_sequence,
    )


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


def resolve_bags(params: CfgGenerateParams, grammar: cfg.Grammar) -> Bags | None:
    spec = params.implicit
    if spec is None:
        return None
    return make_bags(len(grammar.terminals), spec.bag_size, spec.overlap, spec.seed)


def generate_cfg(params: CfgGenerateParams, seed: int, out_dir: Path) -> dict[str, int]:
    """Write train/test Parquet, grammar.txt (and bags.json) into `out_dir`; returns row counts."""
    grammar = resolve_grammar(params.grammar)
    bags = resolve_bags(params, grammar)
    (out_dir / "grammar.txt").write_text(cfg.format_grammar(grammar))
    if bags is not None:
        save_bags(bags, out_dir / "bags.json")
    write_json(out_dir / STREAM_RECORD, stream_record("cfg", seed, params, cfg.format_grammar(grammar),
                                                      bags_to_json(bags) if bags is not None else ""))
    splits = {"train": (0, params.train_sentences), "test": (params.train_sentences, params.test_sentences)}
    for split, (start, count) in splits.items():
        frame = sample_split(grammar, seed, start, count, f"generate {split}", params.perturb if split == "train" else None, bags,
                             workers=params.workers or os.cpu_count() or 1)
        frame.write_parquet(out_dir / f"{split}.parquet", compression="zstd", statistics=False)
    return {split: count for split, (_, count) in splits.items()}


@dataclass(frozen=True)
class Language:
    """What a grammar-world dataset's strings are judged against: its grammar, and the bags if implicit."""

    grammar: cfg.Grammar
    bags: Bags | None = None

    @property
    def vocab_size(self) -> int:
        """Symbols a sentence is written in: terminals 1..V, or tokens 1..M of an implicit grammar."""
        return len(self.grammar.terminals) if self.bags is None else self.bags.vocab_size

    def judge(self) -> Callable[[Sequence[int]], bool]:
        return cfg.Judge(self.grammar) if self.bags is None else ImplicitJudge(self.grammar, self.bags)

    def next_token_distributions(self, tokens: Sequence[int]) -> np.ndarray:
        """[len + 1, vocab_size + 1]: exact next-symbol distributions (column 0 = EOS)."""
        return next_token_distributions(self.grammar, tokens, emissions=None if self.bags is None else self.bags.bags)


def load_language(raw_dir: Path) -> Language:
    """The grammar (raw/grammar.txt) and, for an implicit grammar, the bags (raw/bags.json) of a dataset."""
    bags_path = raw_dir / "bags.json"
    return Language(load_study_grammar(raw_dir), load_bags(bags_path) if bags_path.is_file() else None)


def load_study_grammar(raw_dir: Path) -> cfg.Grammar:
    """The grammar a study's data was generated from (raw/grammar.txt)."""
    path = raw_dir / "grammar.txt"
    if not path.is_file():
        raise DataError(f"{path}: file not found (run the generate stage)")
    return cfg.parse_grammar(path.read_text(), str(path))


# ---------------------------------------------------------------------------------------------------------
# iGSM (Part 2.1): train.parquet and one Parquet file per eval set, columns in physlm/worlds/igsm/generator.py


def igsm_spec(params: IgsmGenerateParams):
    from physlm.worlds.igsm.generator import IgsmSpec

    return IgsmSpec(max_op=params.max_op, max_edge=params.max_edge, fmt=params.fmt, split_rule=params.split_rule,
                    max_layers=params.max_layers, max_items=params.max_items, names=params.names)


def generate_igsm(params: IgsmGenerateParams, seed: int, out_dir: Path) -> dict[str, int]:
    """Write train.parquet (op <= max_op, training templates) and test/opmax/ood/reask.parquet."""
    from physlm.worlds.igsm.generator import generate_frame

    spec = igsm_spec(params)
    workers = params.workers or os.cpu_count() or 1
    frames = {"train": generate_frame(spec, seed, params.train_problems, split="train", workers=workers)}
    for eval_set in IGSM_EVAL_SETS:
        frames[eval_set] = generate_frame(spec, seed, params.eval_problems, eval_set=eval_set, ood_ops=params.ood_ops,
                                          workers=workers)
    for name, frame in frames.items():
        frame.write_parquet(out_dir / f"{name}.parquet", compression="zstd", statistics=False)
    write_json(out_dir / STREAM_RECORD, stream_record("igsm", seed, params))
    return {name: len(frame) for name, frame in frames.items()}


def igsm_texts(path: Path) -> list[str]:
    """The training text of every problem in an iGSM Parquet file (`physlm.text.igsm_sequence`)."""
    from physlm.text import igsm_sequence

    frame = read_parquet(path, ["problem", "solution", "answer"])
    return [igsm_sequence(p, s, int(a)) for p, s, a in frame.iter_rows()]


def igsm_vocabulary(units: str = "names"):
    """The iGSM vocabulary (`physlm.text.igsm_vocab`), built from the world's item and category names (package
    data), so it is the same for every iGSM dataset with the same `units`."""
    from physlm.text import igsm_vocab
    from physlm.worlds.igsm.generator import load_world

    names = [name for c in load_world().categorizations for layer in c.layers
             for name in (layer.category, *(item for _, items in layer.subcategories for item in items))]
    return igsm_vocab(names, units)


def load_igsm_problems(path: Path, limit: int | None = None) -> list:
    """`Problem`s of an iGSM Parquet file (the first `limit` rows)."""
    from physlm.worlds.igsm.generator import FRAME_SCHEMA, problem_from_row

    frame = read_parquet(path, list(FRAME_SCHEMA))
    if limit is not None:
        frame = frame.head(limit)
    return [problem_from_row(row) for row in frame.iter_rows(named=True)]


# Biographies (Part 3.1): people.parquet, bios.parquet and qa.parquet, columns in physlm/worlds/bio/people.py; qa's
# `split` is P_train (finetuned on) or P_test (evaluated out of distribution)


def bio_spec(params: BioGenerateParams, seed: int):
    from physlm.worlds.bio.people import CODE_ORDER, PAPER_ORDER, BioSpec, PoolSizes

    return BioSpec(people=params.people + params.celebrities, seed=seed, pools=PoolSizes(**params.pools.model_dump()),
                   pronouns=params.pronouns, order=PAPER_ORDER if params.order == "paper" else CODE_ORDER)


def generate_bio(params: BioGenerateParams, seed: int, out_dir: Path) -> dict[str, int]:
    """Write people.parquet, bios.parquet (every person's biographies) and qa.parquet (six questions each).

    Without celebrities, people 0..N//2-1 are P_train and the rest P_test (`qa_frame`). With C celebrities
    (SPEC 4.1's celebrity experiment), people N..N+C-1 are written with `celebrity_variant` and are the only
    P_train; the N others (the minority, `variant`) are all P_test."""
    import polars as pl

    from physlm.worlds.bio.people import bior_frame, bios_frame, make_people, parse_variant, people_frame, qa_frame

    spec = bio_spec(params, seed)
    people = make_people(spec)
    write = bios_frame if params.text == "bioS" else bior_frame
    minority, celebrities = people[: params.people], people[params.people :]
    bios = write(minority, spec, parse_variant(params.variant))
    qa = qa_frame(people)
    if celebrities:
        bios = pl.concat([bios, write(celebrities, spec, parse_variant(params.celebrity_variant))])
        qa = qa.with_columns(split=pl.when(pl.col("person") >= params.people).then(pl.lit("P_train")).otherwise(pl.lit("P_test")))
    frames = {"people": people_frame(people), "bios": bios, "qa": qa}
    for name, frame in frames.items():
        frame.write_parquet(out_dir / f"{name}.parquet", compression="zstd", statistics=False)
    write_json(out_dir / "pools.json", params.pools.model_dump())  # the vocabulary covers exactly these pools
    return {name: len(frame) for name, frame in frames.items()}


def bio_vocabulary(raw: Path, units: str):
    """The bio vocabulary (`physlm.worlds.bio.text.bio_vocab`) of the dataset's pools (raw/pools.json): template words,
    dates, and the values of exactly those pools."""
    from physlm.worlds.bio.text import bio_vocab
    from physlm.worlds.bio.people import PoolSizes, load_pools, load_templates

    try:
        sizes = PoolSizes(**read_json(raw / "pools.json"))
    except TypeError as err:
        raise DataError(f"{raw / 'pools.json'}: not the pool sizes ({err})") from None
    return bio_vocab(load_pools(sizes), load_templates(), units)
