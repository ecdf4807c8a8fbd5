"""The iGSM world's tokenize step: every problem of raw/{train,test}.parquet as its training text
(`text.igsm_sequence`) in the word-level vocabulary of `vocabulary(units)`; problems longer than a window
are dropped (SPEC 2.2), and meta.json records the `units`."""

from __future__ import annotations

from pathlib import Path

from physlm.io import read_parquet
from physlm.text import encode_many
from physlm.worlds import Tokenized
from physlm.worlds.igsm.knowledge import load_knowledge
from physlm.worlds.igsm.params import IgsmTokenizeParams
from physlm.worlds.igsm.text import igsm_sequence, igsm_vocab


def texts(path: Path) -> list[str]:
    """The training text of every problem in an iGSM Parquet file (`text.igsm_sequence`)."""
    frame = read_parquet(path, ["problem", "solution", "answer"])
    return [igsm_sequence(p, s, int(a)) for p, s, a in frame.iter_rows()]


def vocabulary(units: str = "names"):
    """The iGSM vocabulary (`text.igsm_vocab`), built from the world's item and category names (package
    data), so it is the same for every iGSM dataset with the same `units`."""
    names = [name for c in load_knowledge().categorizations for layer in c.layers
             for name in (layer.category, *(item for _, items in layer.subcategories for item in items))]
    return igsm_vocab(names, units)


def tokenize(raw: Path, params: IgsmTokenizeParams) -> Tokenized:
    vocab = vocabulary(params.units)
    splits = {split: (lambda split=split: encode_many(vocab, texts(raw / f"{split}.parquet"))) for split in ("train", "test")}
    return Tokenized(vocab, splits, meta={"units": params.units}, drop_long=True)
