"""The capacity world's tokens and its tokenize step.

The vocabulary is built here from the dataset's capacity.json (nothing is downloaded), in this order: `<bos>`,
`<eos>`, the template's words (`'s is , . Their`), the K attribute tokens `ID_1` .. `ID_K`, the T value tokens
`v0` .. `v{T-1}`, then every name part of the pools used (first, middle, last names in file order, each word once:
a word in two pools is one token, and a full name stays unique because its parts keep their places). The model's
embedding has one row per token of it (`meta.json`'s `vocab_size`); `used_tokens` counts those the train split
holds, which is what the paper's parameter count keeps (SPEC 6.2).

Splits: `train` holds `tokenize.copies` writings of every person's paragraph (writing c of person i orders its
sentences by `biod.order(seed, i, c)`, writing 0 is people.parquet's text), all N x copies of them in one seeded
shuffle (`np.random.default_rng([seed, copies])`), so a person's writings are not packed side by side; `test`
(the validation loss) holds writing 0 of every person in person order: capacity is memorisation, so there is no
held-out knowledge and the validation loss is on the training people. No loss mask: the loss is on every token.
meta.json gets `people` (N), `copies`, `entry_tokens` (tokens per paragraph with its <bos> and <eos>, the same for
every paragraph) and `used_tokens`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from physlm import names
from physlm.errors import DataError
from physlm.io import read_json, read_parquet
from physlm.tokenize import BOS, EOS, Vocab
from physlm.worlds import Tokenized
from physlm.worlds.capacity.biod import (
    COMMA,
    POSSESSIVE,
    PRONOUN,
    STOP,
    VERB,
    WORDS,
    Spec,
    attribute_token,
    order,
    value_token,
)
from physlm.worlds.capacity.params import CapacityTokenizeParams

SPEC_KEYS = ("N0", "N", "K", "C", "D", "L", "T", "pools", "seed")


def read_spec(raw: Path) -> Spec:
    """raw/capacity.json as a Spec; DataError when it is not one."""
    found = read_json(raw / "capacity.json", SPEC_KEYS)
    try:
        pools = tuple(found["pools"][kind] for kind in names.PARTS)  # the JSON's keys are sorted: not in name order
        spec = Spec(**{k: found[k] for k in ("N", "K", "C", "D", "L", "T", "seed")}, pools=pools)
    except (TypeError, ValueError, AttributeError, KeyError) as err:
        raise DataError(f"{raw / 'capacity.json'}: not a bioD spec ({err})") from None
    if spec.N0 != found["N0"]:
        raise DataError(f"{raw / 'capacity.json'}: N0 {found['N0']} is not the product of its pools ({spec.N0})")
    return spec


def vocabulary(spec: Spec) -> Vocab:
    parts = dict.fromkeys(n for pool in spec.name_pools() for n in pool)
    symbols = (BOS, EOS, *WORDS, *(attribute_token(a) for a in range(1, spec.K + 1)),
               *(value_token(t) for t in range(spec.T)), *parts)
    try:
        return Vocab(symbols)
    except ValueError:
        raise DataError(f"a name part is also a template word or value token: {sorted(set(parts) & set(symbols[:-len(parts)]))}") from None


def check_vocab(tokens: Path, spec: Spec) -> Vocab:
    """The probe and evaluate steps read the dataset's tokenizer.json: it must be this dataset's vocabulary."""
    vocab = vocabulary(spec)
    if Vocab.load(tokens / "tokenizer.json") != vocab:
        raise DataError(f"{tokens / 'tokenizer.json'}: not this capacity dataset's vocabulary (rerun tokenize)")
    return vocab


def read_people(raw: Path, spec: Spec) -> pl.DataFrame:
    people = read_parquet(raw / "people.parquet", {"person": pl.Int64, "first": pl.String, "middle": pl.String,
                                                   "last": pl.String, "chunks": pl.List(pl.List(pl.Int64)),
                                                   "order": pl.List(pl.Int64), "text": pl.String})
    if people.height != spec.N or people["person"].to_list() != list(range(spec.N)):
        raise DataError(f"{raw / 'people.parquet'}: expected people 0..{spec.N - 1} in order (capacity.json's N)")
    return people


def encode_text(vocab_ids: dict[str, int], text: str, where: str) -> list[int]:
    try:
        return [vocab_ids[s] for s in text.split(" ")]
    except KeyError as err:
        raise DataError(f"{where}: a paragraph holds {err}, which is not in the vocabulary") from None


def sentence_bodies(raw: Path, spec: Spec, people: pl.DataFrame, ids: dict[str, int]) -> np.ndarray:
    """[N, K, C L + C + 2] token ids: attribute a's sentence of each person after its opener (`ID_a is <value> .`)."""
    sets = read_parquet(raw / "chunks.parquet", {"attribute": pl.Int64, "chunk": pl.Int64, "tokens": pl.List(pl.Int64)})
    table = np.zeros((spec.K, spec.D, spec.L), dtype=np.int64)
    table[sets["attribute"].to_numpy() - 1, sets["chunk"].to_numpy()] = np.asarray(sets["tokens"].to_list()) + ids[value_token(0)]
    chunks = np.asarray(people["chunks"].to_list(), dtype=np.int64)  # [N, K, C]
    values = table[np.arange(spec.K)[None, :, None], chunks]  # [N, K, C, L]
    comma = np.full((*values.shape[:3], 1), ids[COMMA])
    values = np.concatenate([values, comma], axis=3).reshape(spec.N, spec.K, -1)[:, :, :-1]  # chunks, commas between
    attributes = np.broadcast_to(np.arange(spec.K) + ids[attribute_token(1)], (spec.N, spec.K))  # ID_1.. are consecutive
    head = np.stack([attributes, np.full((spec.N, spec.K), ids[VERB])], axis=2)
    return np.concatenate([head, values, np.full((spec.N, spec.K, 1), ids[STOP])], axis=2)


def writings(spec: Spec, people: pl.DataFrame, bodies: np.ndarray, ids: dict[str, int], entries: list[tuple[int, int]]) -> np.ndarray:
    """[len(entries), tokens] the paragraphs (person i, writing c) as token ids."""
    names = np.asarray([[ids[f], ids[m], ids[last]] for f, m, last in people.select("first", "middle", "last").iter_rows()])
    person = np.asarray([i for i, _ in entries], dtype=np.int64)
    orders = np.asarray([order(spec.seed, i, c, spec.K) for i, c in entries], dtype=np.int64) - 1  # [E, K]
    openers = np.full((len(entries), spec.K, 1), ids[PRONOUN])
    openers[:, 0, 0] = ids[POSSESSIVE]
    sentences = np.concatenate([openers, bodies[person[:, None], orders]], axis=2).reshape(len(entries), -1)
    return np.concatenate([names[person], sentences], axis=1)


def flat(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return rows.reshape(-1), np.arange(len(rows) + 1, dtype=np.int64) * rows.shape[1]


def tokenize(raw: Path, params: CapacityTokenizeParams) -> Tokenized:
    spec = read_spec(raw)
    vocab = vocabulary(spec)
    ids = {s: i for i, s in enumerate(vocab.symbols)}
    people = read_people(raw, spec)
    bodies = sentence_bodies(raw, spec, people, ids)
    test = writings(spec, people, bodies, ids, [(i, 0) for i in range(spec.N)])
    texts = [encode_text(ids, t, str(raw / "people.parquet")) for t in people["text"]]
    if any(len(t) != test.shape[1] for t in texts) or not np.array_equal(np.asarray(texts), test):
        raise DataError(f"{raw / 'people.parquet'}: a text is not its person's writing 0 (regenerate the dataset)")
    if test.shape[1] + 2 > params.context + 1:
        raise DataError(f"{raw}: paragraphs of {test.shape[1] + 2} tokens (with <bos> and <eos>) exceed a window of"
                        f" tokenize.context + 1 = {params.context + 1}")
    entries = [(i, c) for i in range(spec.N) for c in range(params.copies)]
    shuffled = np.random.default_rng([spec.seed, params.copies]).permutation(len(entries))
    train = writings(spec, people, bodies, ids, [entries[k] for k in shuffled])
    used = len({vocab.bos_id, vocab.eos_id} | set(np.unique(train).tolist()))
    meta = {"people": spec.N, "copies": params.copies, "entry_tokens": test.shape[1] + 2, "used_tokens": used}
    return Tokenized(vocab, {"train": lambda: flat(train), "test": lambda: flat(test)}, meta=meta)
