"""The iGSM world's generate step: `data/<dataset>/raw/train.parquet` (op <= max_op, training templates) and
one file per eval set (`EVAL_SETS`: test, opmax, ood, reask), rows as `frames.FRAME_SCHEMA`, plus
stream.json for streamed training (`physlm.stream.stream_record`)."""

from __future__ import annotations

import os
from pathlib import Path

from physlm.io import write_json
from physlm.stream import RECORD as STREAM_RECORD, stream_record
from physlm.worlds.igsm.frames import generate_frame
from physlm.worlds.igsm.graph import IgsmSpec
from physlm.worlds.igsm.params import IgsmGenerateParams
from physlm.worlds.igsm.problems import EVAL_SETS


def igsm_spec(params: IgsmGenerateParams):
    return IgsmSpec(max_op=params.max_op, max_edge=params.max_edge, fmt=params.fmt, split_rule=params.split_rule,
                    max_layers=params.max_layers, max_items=params.max_items, names=params.names)


def generate(params: IgsmGenerateParams, seed: int, out_dir: Path) -> dict[str, int]:
    """Write train.parquet (op <= max_op, training templates) and test/opmax/ood/reask.parquet."""
    spec = igsm_spec(params)
    workers = params.workers or os.cpu_count() or 1
    frames = {"train": generate_frame(spec, seed, params.train_problems, split="train", workers=workers)}
    for eval_set in EVAL_SETS:
        frames[eval_set] = generate_frame(spec, seed, params.eval_problems, eval_set=eval_set, ood_ops=params.ood_ops,
                                          workers=workers)
    for name, frame in frames.items():
        frame.write_parquet(out_dir / f"{name}.parquet", compression="zstd", statistics=False)
    write_json(out_dir / STREAM_RECORD, stream_record("igsm", seed, params))
    return {name: len(frame) for name, frame in frames.items()}
