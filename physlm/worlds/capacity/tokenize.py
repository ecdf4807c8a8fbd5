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

The junk-data study (SPEC 6.3, P3.3-f; both options default off, and then nothing here changes):
- `junk_fraction` f > 0 (needs `generate.junk_people` N' > 0, and N' > 0 needs f > 0): the train split also holds
  J = round(f / (1 - f) x N x copies) junk paragraphs, the k-th junk writing k // N' of junk person k mod N'
  (raw/junk.parquet; each writing its own sentence order, `biod.order(..., junk=True)`), so with N' >= J each junk
  person is written once, with N' small (the repetitive-junk control) many times. A junk paragraph has as many
  tokens as a useful one, so f is their share of the split's paragraph tokens (domain tokens not counted). Useful
  and junk paragraphs are shuffled together (`np.random.default_rng([seed, copies, J])`, one permutation whatever
  `domain_token` is, so the datasets with and without it differ only by that token);
- `domain_token`: the token `<useful>` (the vocabulary's last, so every other id is as without it) right after
  `<bos>` of every useful paragraph, in the train and test splits (and the probe's and evaluation's prompts read
  it from meta.json), never before a junk paragraph.
meta.json then also gets `junk` (`people` N', `paragraphs` J, `entry_tokens` of a junk paragraph, `requested` f,
`fraction`: the junk's share of the split's tokens with each paragraph's <bos> and <eos>, domain tokens counted as
useful, and `spec`, capacity.json, from which the train step tells useful names from junk ones) and, with the
domain token, `domain_token` (its id); `entry_tokens` counts the domain token.

bioS(N) and bioS^simple(N) (capacity.json's `data`; `tokenize_bios`): the vocabulary is the biography world's
(`physlm.bios.text.bio_vocab` of the pools used, `tokenize.units` words or values; `biosn.vocabulary`); the train
split holds writings 0 .. copies-1 of every person (`biosn.writing`; bioS^simple: `copies` copies of its one entry),
in the same seeded shuffle as bioD's; the test split writing 0 of every person. Every paragraph must open with its
person's three name tokens (the exposure count reads them). The writings are encoded in blocks of people on
spawned processes, one per core (the split does not depend on their number). meta.json: `data`, `units`,
`people`, `copies`, `writings` (distinct writings per person), `entry_tokens` ({mean, min, max}: paragraphs now
differ in length) and `used_tokens`. The junk options are refused (the junk-data study is built on bioD only), and
`units` is refused for bioD (its vocabulary is its own).
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import polars as pl

from physlm import names
from physlm.errors import DataError
from physlm.io import read_json, read_parquet
from physlm.tokenize import BOS, EOS, Vocab
from physlm.worlds import Tokenized
from physlm.worlds.capacity import biosn
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
from physlm.worlds.capacity.params import DOMAIN_TOKEN, CapacityTokenizeParams

SPEC_KEYS = ("N0", "N", "K", "C", "D", "L", "T", "pools", "seed")
BLOCK = 1 << 16  # train-split paragraphs written at once when junk is mixed in


def read_spec(raw: Path) -> Spec | biosn.Spec:
    """raw/capacity.json as a bioD Spec, or a `biosn.Spec` where its `data` is bioS or bioS_simple (bioD's file has
    no `data` key); DataError when it is neither."""
    found, where = read_json(raw / "capacity.json"), str(raw / "capacity.json")
    if isinstance(found, dict) and found.get("data", "bioD") != "bioD":
        return biosn.spec_of_json(found, where)
    return spec_of_json(found, where)


def spec_of_json(found: dict, where: str) -> Spec:
    """capacity.json's content (`Spec.resolved`) as a Spec; DataError naming `where` when it is not one."""
    missing = [k for k in SPEC_KEYS if not isinstance(found, dict) or k not in found]
    if missing:
        raise DataError(f"{where}: missing key(s) {', '.join(missing)}")
    try:
        pools = tuple(found["pools"][kind] for kind in names.PARTS)  # the JSON's keys are sorted: not in name order
        spec = Spec(**{k: found[k] for k in ("N", "K", "C", "D", "L", "T", "seed")}, pools=pools,
                    junk_people=found.get("junk_people", 0))
    except (TypeError, ValueError, AttributeError, KeyError) as err:
        raise DataError(f"{where}: not a bioD spec ({err})") from None
    if spec.N0 != found["N0"]:
        raise DataError(f"{where}: N0 {found['N0']} is not the product of its pools ({spec.N0})")
    return spec


def vocabulary(spec: Spec, domain_token: bool = False) -> Vocab:
    """The module docstring's vocabulary; with `domain_token`, `<useful>` appended last."""
    parts = dict.fromkeys(n for pool in spec.name_pools() for n in pool)
    symbols = (BOS, EOS, *WORDS, *(attribute_token(a) for a in range(1, spec.K + 1)),
               *(value_token(t) for t in range(spec.T)), *parts)
    try:
        return Vocab(symbols + ((DOMAIN_TOKEN,) if domain_token else ()))
    except ValueError:
        raise DataError(f"a name part is also a template word or value token: {sorted(set(parts) & set(symbols[:-len(parts)]))}") from None


def domain_token_id(tokens: Path) -> int | None:
    """The domain token's id where the dataset was tokenized with `domain_token` (meta.json), else None."""
    return read_json(tokens / "meta.json").get("domain_token")


def check_vocab(tokens: Path, spec: Spec | biosn.Spec) -> Vocab:
    """The probe and evaluate steps read the dataset's tokenizer.json: it must be this dataset's vocabulary (with the
    domain token where meta.json names one; bioS: of meta.json's `units`)."""
    if isinstance(spec, biosn.Spec):
        vocab = biosn.vocabulary(spec.pools, read_json(tokens / "meta.json", ("units",))["units"])
        if Vocab.load(tokens / "tokenizer.json").symbols != vocab.symbols:
            raise DataError(f"{tokens / 'tokenizer.json'}: not this capacity dataset's vocabulary (rerun tokenize)")
        return vocab
    marker = domain_token_id(tokens)
    vocab = vocabulary(spec, marker is not None)
    if Vocab.load(tokens / "tokenizer.json") != vocab or marker not in (None, vocab.size - 1):
        raise DataError(f"{tokens / 'tokenizer.json'}: not this capacity dataset's vocabulary (rerun tokenize)")
    return vocab


def read_people(raw: Path, spec: Spec, junk: bool = False) -> pl.DataFrame:
    """people.parquet (or with `junk`, junk.parquet), checked to hold people 0 .. N-1 (0 .. N'-1) in order."""
    path, n = (raw / "junk.parquet", spec.junk_people) if junk else (raw / "people.parquet", spec.N)
    people = read_parquet(path, {"person": pl.Int64, "first": pl.String, "middle": pl.String,
                                 "last": pl.String, "chunks": pl.List(pl.List(pl.Int64)),
                                 "order": pl.List(pl.Int64), "text": pl.String})
    if people.height != n or people["person"].to_list() != list(range(n)):
        raise DataError(f"{path}: expected people 0..{n - 1} in order (capacity.json's {'junk_people' if junk else 'N'})")
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
    chunks = np.asarray(people["chunks"].to_list(), dtype=np.int64)  # [n, K, C]
    n = people.height  # N, or the junk people written
    values = table[np.arange(spec.K)[None, :, None], chunks]  # [n, K, C, L]
    comma = np.full((*values.shape[:3], 1), ids[COMMA])
    values = np.concatenate([values, comma], axis=3).reshape(n, spec.K, -1)[:, :, :-1]  # chunks, commas between
    attributes = np.broadcast_to(np.arange(spec.K) + ids[attribute_token(1)], (n, spec.K))  # ID_1.. are consecutive
    head = np.stack([attributes, np.full((n, spec.K), ids[VERB])], axis=2)
    return np.concatenate([head, values, np.full((n, spec.K, 1), ids[STOP])], axis=2)


def name_ids(people: pl.DataFrame, ids: dict[str, int]) -> np.ndarray:
    """[n, 3] the token ids of each person's first, middle and last name."""
    return np.asarray([[ids[f], ids[m], ids[last]] for f, m, last in people.select("first", "middle", "last").iter_rows()])


def writings(spec: Spec, names: np.ndarray, bodies: np.ndarray, ids: dict[str, int], entries: list[tuple[int, int]],
             junk: bool = False) -> np.ndarray:
    """[len(entries), tokens] the paragraphs (person i, writing c) as token ids (junk person i with `junk`), from the
    people's name ids (`name_ids`) and sentence bodies (`sentence_bodies`)."""
    person = np.asarray([i for i, _ in entries], dtype=np.int64)
    orders = np.asarray([order(spec.seed, i, c, spec.K, junk) for i, c in entries], dtype=np.int64).reshape(-1, spec.K) - 1  # [E, K]
    openers = np.full((len(entries), spec.K, 1), ids[PRONOUN])
    openers[:, 0, 0] = ids[POSSESSIVE]
    sentences = np.concatenate([openers, bodies[person[:, None], orders]], axis=2).reshape(len(entries), -1)
    return np.concatenate([names[person], sentences], axis=1)


def flat(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return rows.reshape(-1), np.arange(len(rows) + 1, dtype=np.int64) * rows.shape[1]


def junk_paragraphs(fraction: float, useful: int) -> int:
    """J = round(f / (1 - f) x useful): the junk paragraphs that make f of the paragraphs junk."""
    return round(fraction / (1.0 - fraction) * useful)


def check_junk(raw: Path, spec: Spec, params: CapacityTokenizeParams) -> None:
    """generate.junk_people and tokenize.junk_fraction go together: DataError when one is set without the other."""
    if params.junk_fraction and not spec.junk_people:
        raise DataError(f"{raw}: tokenize.junk_fraction {params.junk_fraction} needs junk people, and the dataset has none"
                        " (set generate.junk_people)")
    if spec.junk_people and not params.junk_fraction:
        raise DataError(f"{raw}: the dataset has {spec.junk_people} junk people (generate.junk_people) but"
                        " tokenize.junk_fraction is 0: set junk_fraction, or junk_people 0 (nothing would use them)")


def with_marker(rows: np.ndarray, marker: int | None) -> np.ndarray:
    """The paragraphs with the domain token before each (rows unchanged without one)."""
    return rows if marker is None else np.concatenate([np.full((len(rows), 1), marker, dtype=rows.dtype), rows], axis=1)


def mixture(spec: Spec, useful: tuple[np.ndarray, np.ndarray], junk: tuple[np.ndarray, np.ndarray], ids: dict[str, int],
            copies: int, paragraphs: int, own: int, marker: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(flat ids, offsets) of the train split with junk: the N x copies useful writings (each after the domain token
    `marker` if any) and `paragraphs` junk ones (the k-th: junk writing k // N' of junk person k mod N'), in one
    seeded shuffle (module docstring), written a block at a time. `useful` and `junk`: (name ids, sentence bodies)
    of the useful and the junk people; `own`: a paragraph's tokens without the domain token."""
    count = spec.N * copies
    shuffled = np.random.default_rng([spec.seed, copies, paragraphs]).permutation(count + paragraphs)
    lengths = np.where(shuffled < count, own + (marker is not None), own)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    out = np.empty(offsets[-1], dtype=np.int64)
    for lo in range(0, len(shuffled), BLOCK):
        block = shuffled[lo : lo + BLOCK]
        at = offsets[lo : lo + len(block)]
        is_junk = block >= count
        rows = with_marker(writings(spec, *useful, ids, [divmod(int(e), copies) for e in block[~is_junk]]), marker)
        out[at[~is_junk, None] + np.arange(rows.shape[1])] = rows
        k = block[is_junk] - count
        rows = writings(spec, *junk, ids, [(int(j), int(c)) for j, c in zip(k % spec.junk_people, k // spec.junk_people)],
                        junk=True)
        out[at[is_junk, None] + np.arange(rows.shape[1])] = rows
    return out, offsets


def tokenize(raw: Path, params: CapacityTokenizeParams) -> Tokenized:
    spec = read_spec(raw)
    if isinstance(spec, biosn.Spec):
        return tokenize_bios(raw, spec, params)
    if "units" in params.model_fields_set:
        raise DataError(f"{raw}: tokenize.units is for bioS data; a bioD dataset has its own vocabulary (leave it out)")
    check_junk(raw, spec, params)
    vocab = vocabulary(spec, params.domain_token)
    ids = {s: i for i, s in enumerate(vocab.symbols)}
    marker = ids[DOMAIN_TOKEN] if params.domain_token else None
    people = read_people(raw, spec)
    bodies = sentence_bodies(raw, spec, people, ids)
    names = name_ids(people, ids)
    test = writings(spec, names, bodies, ids, [(i, 0) for i in range(spec.N)])
    texts = [encode_text(ids, t, str(raw / "people.parquet")) for t in people["text"]]
    if any(len(t) != test.shape[1] for t in texts) or not np.array_equal(np.asarray(texts), test):
        raise DataError(f"{raw / 'people.parquet'}: a text is not its person's writing 0 (regenerate the dataset)")
    test = with_marker(test, marker)
    if test.shape[1] + 2 > params.context + 1:
        raise DataError(f"{raw}: paragraphs of {test.shape[1] + 2} tokens (with <bos> and <eos>) exceed a window of"
                        f" tokenize.context + 1 = {params.context + 1}")
    meta = {"people": spec.N, "copies": params.copies, "entry_tokens": test.shape[1] + 2}
    if not params.junk_fraction:
        entries = [(i, c) for i in range(spec.N) for c in range(params.copies)]
        shuffled = np.random.default_rng([spec.seed, params.copies]).permutation(len(entries))
        train = writings(spec, names, bodies, ids, [entries[k] for k in shuffled])
        meta["used_tokens"] = len({vocab.bos_id, vocab.eos_id} | set(np.unique(train).tolist()))
        return Tokenized(vocab, {"train": lambda: flat(train), "test": lambda: flat(test)}, meta=meta)
    paragraphs = junk_paragraphs(params.junk_fraction, spec.N * params.copies)
    if paragraphs < 1:
        raise DataError(f"{raw}: tokenize.junk_fraction {params.junk_fraction} of N {spec.N} x copies {params.copies} useful"
                        " paragraphs rounds to no junk paragraph")
    junk = read_people(raw, spec, junk=True).head(min(spec.junk_people, paragraphs))  # the junk people written
    junk_names, junk_bodies = name_ids(junk, ids), sentence_bodies(raw, spec, junk, ids)
    own = test.shape[1] - (marker is not None)  # a paragraph's own tokens, useful or junk
    check = junk["text"].head(100)  # spot check: the texts are the junk people's writings 0
    if not np.array_equal(np.asarray([encode_text(ids, t, str(raw / "junk.parquet")) for t in check]),
                          writings(spec, junk_names, junk_bodies, ids, [(j, 0) for j in range(len(check))], junk=True)):
        raise DataError(f"{raw / 'junk.parquet'}: a text is not its junk person's writing 0 (regenerate the dataset)")
    train_flat, offsets = mixture(spec, (names, bodies), (junk_names, junk_bodies), ids, params.copies, paragraphs, own, marker)
    junk_tokens = paragraphs * (own + 2)  # each with its <bos> and <eos>
    meta["used_tokens"] = len({vocab.bos_id, vocab.eos_id} | set(np.unique(train_flat).tolist()))
    meta["junk"] = {"people": spec.junk_people, "paragraphs": paragraphs, "entry_tokens": own + 2,
                    "requested": params.junk_fraction, "fraction": junk_tokens / (len(train_flat) + 2 * (len(offsets) - 1)),
                    "spec": spec.resolved()}
    if marker is not None:
        meta["domain_token"] = marker
    return Tokenized(vocab, {"train": lambda: (train_flat, offsets), "test": lambda: flat(test)}, meta=meta)


# ------------------------------------------------------------------------------------------------ bioS(N)

PEOPLE_AT_ONCE = 500  # people whose writings one worker encodes at a time


def _encode_people(spec: biosn.Spec, units: str, people: list, writings: int) -> tuple[np.ndarray, np.ndarray]:
    """(flat ids, lengths) of writings 0 .. writings-1 of each of `people`, person after person."""
    vocab = biosn.vocabulary(spec.pools, units)
    rows = [biosn.encode(vocab, p, biosn.writing(spec, p, w), spans=False)[0] for p in people for w in range(writings)]
    return np.fromiter((t for r in rows for t in r), dtype=np.uint16), np.asarray([len(r) for r in rows], dtype=np.int64)


def _encode_all(spec: biosn.Spec, units: str, people: list, writings: int) -> tuple[np.ndarray, np.ndarray]:
    """`_encode_people` of every person, in blocks on spawned processes (one per core); the result does not depend
    on their number."""
    blocks = [(spec, units, people[lo : lo + PEOPLE_AT_ONCE], writings) for lo in range(0, len(people), PEOPLE_AT_ONCE)]
    workers = min(os.cpu_count() or 1, len(blocks))
    if workers == 1:
        found = [_encode_people(*b) for b in blocks]
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            found = pool.starmap(_encode_people, blocks)
    return np.concatenate([f for f, _ in found]), np.concatenate([n for _, n in found])


def _gather(flat: np.ndarray, lengths: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flat ids, offsets) of the rows `order` of the rows (`flat` cut by `lengths`), in that order."""
    starts = np.concatenate([[0], np.cumsum(lengths)])[:-1]
    taken = lengths[order]
    offsets = np.concatenate([[0], np.cumsum(taken)])
    index = np.repeat(starts[order] - offsets[:-1], taken) + np.arange(offsets[-1])
    return flat[index].astype(np.int64), offsets


def tokenize_bios(raw: Path, spec: biosn.Spec, params: CapacityTokenizeParams) -> Tokenized:
    """bioS / bioS_simple (docs/capacity.md): train = writings 0 .. copies-1 of every person (bioS_simple: `copies`
    copies of its one entry) in one seeded shuffle, as bioD's; test = writing 0 of every person, in person order."""
    if params.junk_fraction or params.domain_token:
        raise DataError(f"{raw}: tokenize.junk_fraction / domain_token: the junk-data study is built on bioD only, not on {spec.data}")
    people = biosn.people(spec)
    texts = read_parquet(raw / "people.parquet", {"person": pl.Int64, "text": pl.String})
    if texts["person"].to_list() != list(range(spec.N)):
        raise DataError(f"{raw / 'people.parquet'}: expected people 0..{spec.N - 1} in order (capacity.json's N)")
    if texts["text"].to_list() != [biosn.writing(spec, p, 0).text for p in people]:
        raise DataError(f"{raw / 'people.parquet'}: a text is not its person's writing 0 (regenerate the dataset)")
    vocab = biosn.vocabulary(spec.pools, params.units)
    writings = 1 if spec.simple else params.copies  # distinct writings per person
    flat, lengths = _encode_all(spec, params.units, people, writings)
    if lengths.max() + 2 > params.context + 1:
        raise DataError(f"{raw}: paragraphs of up to {lengths.max() + 2} tokens (with <bos> and <eos>) exceed a window of"
                        f" tokenize.context + 1 = {params.context + 1}")
    first = np.arange(spec.N) * writings  # writing 0 of each person
    shuffled = np.random.default_rng([spec.seed, params.copies]).permutation(spec.N * params.copies)
    person, copy = np.divmod(shuffled, params.copies)
    train = _gather(flat, lengths, person * writings + (0 if spec.simple else copy))
    test = _gather(flat, lengths, first)
    own = np.diff(train[1]) + 2  # each train paragraph with its <bos> and <eos>
    meta = {"data": spec.data, "units": params.units, "people": spec.N, "copies": params.copies, "writings": writings,
            "entry_tokens": {"mean": float(own.mean()), "min": int(own.min()), "max": int(own.max())},
            "used_tokens": len({vocab.bos_id, vocab.eos_id} | set(np.unique(train[0]).tolist()))}
    return Tokenized(vocab, {"train": lambda: train, "test": lambda: test}, meta=meta)
