"""The Brevo world's tokenize step: the dataset's vocabulary (`text.Layout.vocab`, from raw/brevo.json) and its
train/test instances as token ids with a loss mask on `<ans>`, the answer and the `<eos>` the stage appends
(`eos_loss`). meta.json records the layout. Every instance must fit one window with its `<bos>` and `<eos>`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from physlm.errors import DataError
from physlm.params import TokenizeParams
from physlm.tokenize import Vocab
from physlm.worlds import Tokenized
from physlm.worlds.brevo.frames import read_instances, read_layout
from physlm.worlds.brevo.text import Layout, flat_encode

def check_vocab(tokens: Path, layout: Layout) -> None:
    """The probe and evaluate steps read the dataset's tokenizer.json: it must be the layout's vocabulary."""
    if Vocab.load(tokens / "tokenizer.json") != layout.vocab():
        raise DataError(f"{tokens / 'tokenizer.json'}: not this Brevo dataset's vocabulary (rerun tokenize)")


def tokenize(raw: Path, params: TokenizeParams) -> Tokenized:
    layout = read_layout(raw)
    instances = {split: read_instances(raw / f"{split}.parquet", layout) for split in ("train", "test")}
    longest = max(len(layout.sequence(inst)) for found in instances.values() for inst in found)
    if longest > params.context + 1:
        raise DataError(f"{raw}: an instance of {longest} tokens (with <bos> and <eos>) exceeds a window of"
                        f" tokenize.context + 1 = {params.context + 1}")

    meta = {"layout": dataclasses.asdict(layout)}
    splits = {name: (lambda name=name: flat_encode(layout, instances[name])) for name in instances}
    return Tokenized(layout.vocab(), splits, meta=meta, eos_loss=True)
