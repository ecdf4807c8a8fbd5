"""The biography world's generate step: `data/<dataset>/raw/{people,bios,qa}.parquet` (columns in
`biographies`), and pools.json, the pool sizes the vocabulary is built from. qa's `split` is P_train
(finetuned on) or P_test (evaluated out of distribution)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from physlm.io import write_json
from physlm.bios.biographies import bior_frame, bios_frame, people_frame, qa_frame
from physlm.worlds.bio.params import BioGenerateParams
from physlm.bios.people import CODE_ORDER, PAPER_ORDER, BioSpec, PoolSizes, make_people, parse_variant


def bio_spec(params: BioGenerateParams, seed: int):
    return BioSpec(people=params.people + params.celebrities, seed=seed, pools=PoolSizes(**params.pools.model_dump()),
                   pronouns=params.pronouns, order=PAPER_ORDER if params.order == "paper" else CODE_ORDER)


def generate(params: BioGenerateParams, seed: int, out_dir: Path) -> dict[str, int]:
    """Write people.parquet, bios.parquet (every person's biographies) and qa.parquet (six questions each).

    Without celebrities, people 0..N//2-1 are P_train and the rest P_test (`qa_frame`). With C celebrities
    (SPEC 4.1's celebrity experiment), people N..N+C-1 are written with `celebrity_variant` and are the only
    P_train; the N others (the minority, `variant`) are all P_test."""
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
