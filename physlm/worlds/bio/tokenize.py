"""The biography world's tokenize step: the biographies (train.npy), the P_train questions with their answers
(qa.npy: finetuning and mixed training) and the P_test ones (test.npy: the out-of-distribution validation
loss), in the word-level vocabulary of the dataset's pools (`vocabulary`; `tokenize.units`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from physlm.errors import DataError
from physlm.io import read_json, read_parquet
from physlm.text import encode_many
from physlm.worlds import Tokenized
from physlm.worlds.bio.params import BioTokenizeParams
from physlm.bios.people import PoolSizes, load_pools, load_templates
from physlm.bios.text import bio_texts, bio_vocab, qa_text


def split_texts(raw) -> dict[str, list[str]]:
    """The bio world's training texts: biographies (train), P_train QA (qa), P_test QA (test), each list in
    a fixed shuffled order (seed 0): the tables list a person's entries and questions together, and packed
    side by side in one window they could be copied in context instead of recalled."""
    qa = read_parquet(raw / "qa.parquet", ["question", "answer", "split"])
    texts = {"train": bio_texts(read_parquet(raw / "bios.parquet", ["text"]))}
    for name, split in (("qa", "P_train"), ("test", "P_test")):
        texts[name] = [qa_text(q, a) for q, a, _ in qa.filter(qa["split"] == split).iter_rows()]
        if not texts[name]:
            raise DataError(f"{raw / 'qa.parquet'}: no {split} questions")
    rng = np.random.default_rng(0)
    return {name: [found[k] for k in rng.permutation(len(found))] for name, found in texts.items()}


def vocabulary(raw: Path, units: str):
    """The bio vocabulary (`physlm.bios.text.bio_vocab`) of the dataset's pools (raw/pools.json): template words,
    dates, and the values of exactly those pools."""
    try:
        sizes = PoolSizes(**read_json(raw / "pools.json"))
    except TypeError as err:
        raise DataError(f"{raw / 'pools.json'}: not the pool sizes ({err})") from None
    return bio_vocab(load_pools(sizes), load_templates(), units)


def tokenize(raw: Path, params: BioTokenizeParams) -> Tokenized:
    vocab, texts = vocabulary(raw, params.units), split_texts(raw)
    splits = {split: (lambda split=split: encode_many(vocab, texts[split])) for split in ("train", "qa", "test")}
    return Tokenized(vocab, splits, meta={"units": params.units}, drop_long=True)
