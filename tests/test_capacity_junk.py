"""Part 3.3's junk-data study in the capacity world (generate.junk_people, tokenize.junk_fraction and
domain_token): the default knobs give the data of before (digests recorded from the code before the options
existed), the junk people are other people of the same world (names disjoint from the useful people's, read back
by test_capacity's parser), the train split's junk share counted here from the paragraphs identified by name
(flat and in the packed windows), the domain token before every useful paragraph and no junk one (train and test
splits, the evaluation's and probe's prompts), the useful people's exposures, the errors, and a tiny study with
junk and the domain token through every stage."""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from itertools import pairwise
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import yaml
from pydantic import ValidationError
from test_capacity import parse
from test_capacity_stages import tiny_capacity_params

from physlm.errors import DataError
from physlm.tokenize import pack_windows
from physlm.worlds.capacity import biod
from physlm.worlds.capacity.generate import generate
from physlm.worlds.capacity.params import CapacityGenerateParams, CapacityTokenizeParams
from physlm.worlds.capacity.tokenize import tokenize
from physlm.worlds.capacity.train import derived_steps, exposure_counts, packed_tokens

POOLS = {"first_names": 12, "middle_names": 9, "last_names": 15}  # N0 = 1620
GEN = {"N": 40, "K": 3, "C": 2, "D": 6, "L": 2, "T": 5, "pools": POOLS, "workers": 1}
COPIES, CONTEXT, SEVEN_EIGHTHS = 4, 64, 0.875


# ------------------------------------------------------------------------------------- the default: as before


def _frame_digest(path: Path) -> str:
    frame = pl.read_parquet(path)
    h = hashlib.sha256(repr(frame.schema).encode())
    h.update(json.dumps(frame.to_dicts(), sort_keys=True).encode())
    return h.hexdigest()[:16]


def test_default_knobs_give_the_data_of_before(tmp_path: Path) -> None:
    """A tiny dataset generated and tokenized with the options at their defaults (and spelled out) is the data the
    code made before the options existed: digests recorded then (the Parquet files by content, so a polars upgrade
    that re-encodes them does not matter; capacity.json and the packed windows by bytes)."""
    gen = {"N": 60, "K": 3, "C": 2, "D": 6, "L": 2, "T": 5, "pools": POOLS, "workers": 1}
    for extra_gen, extra_tok in (({}, {}), ({"junk_people": 0}, {"junk_fraction": 0.0, "domain_token": False})):
        raw = tmp_path / str(len(extra_gen))
        raw.mkdir()
        generate(CapacityGenerateParams(**gen, **extra_gen), 5, raw)
        tok = tokenize(raw, CapacityTokenizeParams(context=32, pack="sentences", copies=3, **extra_tok))
        h = hashlib.sha256(json.dumps([list(tok.vocab.symbols), dict(tok.meta)], sort_keys=True).encode())
        for split in ("train", "test"):
            windows = pack_windows(*tok.splits[split](), 32, 0, 1, "sentences")
            h.update(repr((split, windows.shape, str(windows.dtype))).encode())
            h.update(windows.tobytes())
        found = {"files": sorted(p.name for p in raw.iterdir()),
                 "capacity.json": hashlib.sha256((raw / "capacity.json").read_bytes()).hexdigest()[:16],
                 "people": _frame_digest(raw / "people.parquet"), "chunks": _frame_digest(raw / "chunks.parquet"),
                 "tokens": h.hexdigest()[:16]}
        assert found == {"files": ["capacity.json", "chunks.parquet", "people.parquet", "stream.json"],  # (stream.json: since the stream step)
                         "capacity.json": "2b0763b4a8e27479",
                         "people": "24f10e4b7b17ffa6", "chunks": "9e35d6fddb08c795", "tokens": "f91c209f7b382121"}


# ----------------------------------------------------------------------------------------------- the junk people


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 useful people and 300 junk people."""
    out = tmp_path_factory.mktemp("junk_raw")
    generate(CapacityGenerateParams(**GEN, junk_people=300), 11, out)
    return out


@pytest.fixture(scope="module")
def repetitive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same 40 useful people and 3 junk people (the repetitive-junk control)."""
    out = tmp_path_factory.mktemp("junk_rep")
    generate(CapacityGenerateParams(**GEN, junk_people=3), 11, out)
    return out


def _names(frame: pl.DataFrame) -> list[str]:
    return [f"{f} {m} {la}" for f, m, la in frame.select("first", "middle", "last").iter_rows()]


def test_junk_people_are_other_people_of_the_same_world(raw: Path, tmp_path: Path) -> None:
    people, junk = pl.read_parquet(raw / "people.parquet"), pl.read_parquet(raw / "junk.parquet")
    assert json.loads((raw / "capacity.json").read_text())["junk_people"] == 300 == junk.height
    assert junk["person"].to_list() == list(range(300)) and junk.columns == people.columns
    # the useful people are the ones a dataset without junk has
    plain = tmp_path / "plain"
    plain.mkdir()
    generate(CapacityGenerateParams(**GEN), 11, plain)
    assert pl.read_parquet(plain / "people.parquet").equals(people)
    assert (plain / "chunks.parquet").read_bytes() == (raw / "chunks.parquet").read_bytes()
    # names: distinct, none a useful person's, each from the pools with a consistent index
    useful, other = _names(people), _names(junk)
    assert len(set(other)) == 300 and not set(other) & set(useful)
    assert not set(junk["name_index"]) & set(people["name_index"])
    first, middle, last = (biod.names.pool(kind, size) for kind, size in zip(biod.names.PARTS, POOLS.values()))
    for (f, m, la), index in zip(junk.select("first", "middle", "last").iter_rows(), junk["name_index"]):
        assert index == (first.index(f) * len(middle) + middle.index(m)) * len(last) + last.index(la)
    # the same format and the same diversity sets; the values are the person's own
    sets = {(a, j): tuple(t) for a, j, t in pl.read_parquet(raw / "chunks.parquet").iter_rows()}
    for row in junk.iter_rows(named=True):
        name, values = parse(row["text"])
        assert name == f"{row['first']} {row['middle']} {row['last']}" and sorted(values) == [1, 2, 3]
        assert all(chunks == [sets[a, j] for j in row["chunks"][a - 1]] for a, chunks in values.items())
    ids = Counter(j for value in junk["chunks"].to_list() for chunks in value for j in chunks)
    assert set(ids) == set(range(GEN["D"]))  # values spread over the whole sets
    assert junk["chunks"].to_list() != people["chunks"].to_list()[: junk.height]  # their own values, not the useful ones'
    # one junk person regenerates alone
    spec = biod.Spec(N=40, K=3, C=2, D=6, L=2, T=5, pools=tuple(POOLS.values()), seed=11, junk_people=300)
    world = biod.make_world(spec)
    alone = biod.junk_person(world, 123, biod.junk_name_indices(world)[123])
    row = junk.row(123, named=True)
    assert alone.name == (row["first"], row["middle"], row["last"]) and [list(c) for c in alone.chunks] == row["chunks"]


def test_complement_indices_against_a_plain_count() -> None:
    rng = np.random.default_rng(3)
    taken = rng.choice(200, size=60, replace=False).tolist()
    free = [n for n in range(200) if n not in set(taken)]
    assert biod.complement_indices(taken, range(140)) == free


def test_every_name_can_be_taken(tmp_path: Path) -> None:
    """N + N' = N0: the junk takes every name the useful people left."""
    pools = {"first_names": 3, "middle_names": 2, "last_names": 4}
    generate(CapacityGenerateParams(**(GEN | {"N": 5, "pools": pools}), junk_people=19), 0, tmp_path)
    names = _names(pl.read_parquet(tmp_path / "people.parquet")) + _names(pl.read_parquet(tmp_path / "junk.parquet"))
    assert len(set(names)) == len(names) == 24


# ------------------------------------------------------------------------------------------- the train split


def _paragraphs(tok) -> list[list[str]]:
    flat, offsets = tok.splits["train"]()
    return [[tok.vocab.symbols[i] for i in flat[a:b]] for a, b in pairwise(offsets)]


def _window_shares(windows: np.ndarray, symbols: tuple[str, ...], useful: set[str], junk: set[str]) -> np.ndarray:
    """[whole, cut] x [useful, junk, unknown] tokens of the windows: every token belongs to the paragraph whose <bos>
    precedes it in its window (a `sentences` window starts at a <bos>), known by its name (after the domain token if
    any), whole when its <eos> is in the window; a paragraph cut by a window's end before its name is the one the
    next window starts with (the layout writes it again whole there)."""
    rows = windows.tolist()

    def name_at(row: list[int], a: int, b: int) -> str:
        words = [symbols[t] for t in row[a + 1 : b]]
        return " ".join((words[1:] if words[:1] == ["<useful>"] else words)[:3])

    counts = np.zeros((2, 3), dtype=np.int64)
    for i, row in enumerate(rows):
        assert row[0] == 0  # a `sentences` window starts at a paragraph
        starts = [k for k, t in enumerate(row) if t == 0] + [len(row)]
        for a, b in pairwise(starts):
            name = name_at(row, a, b)
            if name not in useful | junk and b == len(row) and i + 1 < len(rows):
                following = rows[i + 1]
                name = name_at(following, 0, ([k for k, t in enumerate(following) if t == 0] + [len(following)])[1])
            counts[int(row[b - 1] != 1), 0 if name in useful else 1 if name in junk else 2] += b - a
    return counts


@pytest.mark.parametrize("domain_token", [False, True])
def test_the_train_split_is_seven_eighths_junk(raw: Path, domain_token: bool) -> None:
    tok = tokenize(raw, CapacityTokenizeParams(context=CONTEXT, pack="sentences", copies=COPIES, junk_fraction=SEVEN_EIGHTHS,
                                               domain_token=domain_token))
    people, junk = pl.read_parquet(raw / "people.parquet"), pl.read_parquet(raw / "junk.parquet")
    useful_values = {n: parse(t)[1] for n, t in zip(_names(people), people["text"])}
    junk_values = {n: parse(t)[1] for n, t in zip(_names(junk), junk["text"])}
    seen: Counter[str] = Counter()
    tokens = {"useful": 0, "junk": 0}
    texts = []
    for words in _paragraphs(tok):
        marked = words[0] == "<useful>"
        text = " ".join(words[marked:])
        name, values = parse(text)
        kind = "useful" if name in useful_values else "junk"
        assert values == (useful_values[name] if kind == "useful" else junk_values[name])  # the person's own values
        assert marked == (domain_token and kind == "useful")  # the token before every useful paragraph, no junk one
        seen[name] += 1
        tokens[kind] += len(words) + 2  # with <bos> and <eos>
        texts.append((kind, text))
    U, J = 40 * COPIES, 7 * 40 * COPIES
    assert sum(seen[n] for n in useful_values) == U and {seen[n] for n in useful_values} == {COPIES}
    # the k-th junk paragraph is junk person k mod N': the first J mod N' people once more than the others
    assert sorted((seen[n] for n in junk_values), reverse=True) == [J // 300 + (j < J % 300) for j in range(300)]
    # every junk writing is a new one where the person repeats (3 sentences: at most 3! orders)
    assert len({t for k, t in texts if k == "junk"}) > 300
    # the junk share of the split's tokens, counted here: 7/8 of the paragraphs, a domain token adds to the useful side
    share = tokens["junk"] / (tokens["junk"] + tokens["useful"])
    own = 3 + 3 * (2 * 2 + 2 + 3) + 2
    assert share == pytest.approx(J * own / (J * own + U * (own + domain_token)), abs=1e-12)
    assert share == pytest.approx(tok.meta["junk"]["fraction"], abs=1e-12) and abs(share - SEVEN_EIGHTHS) < 0.005
    assert tok.meta["junk"] | {"spec": None} == {"people": 300, "paragraphs": J, "entry_tokens": own, "requested": SEVEN_EIGHTHS,
                                                 "fraction": tok.meta["junk"]["fraction"], "spec": None}
    assert tok.meta["entry_tokens"] == own + domain_token and tok.meta.get("domain_token") == (
        tok.vocab.size - 1 if domain_token else None)
    # shuffled together, not useful first
    kinds = [k for k, _ in texts]
    assert "junk" in kinds[: len(kinds) // 8] and "useful" in kinds[-len(kinds) // 4 :]
    # in the packed windows (the layout training reads): the whole paragraphs are the split's, each once (but the
    # last, short window's, which the packing drops), so their junk share is the split's; the paragraphs a window's
    # end cuts (written whole again at the next window's start) move the share of all window tokens, here by up to
    # about 0.01 (65-token windows; with the domain token a useful paragraph is one token longer, so two useful ones
    # overflow a window): within 0.015 of 7/8
    flat, offsets = tok.splits["train"]()
    windows = pack_windows(flat, offsets, CONTEXT, tok.vocab.bos_id, tok.vocab.eos_id, "sentences")
    counts = _window_shares(windows, tok.vocab.symbols, set(useful_values), set(junk_values))
    assert counts[0, 2] == 0 and counts[1, 2] < CONTEXT  # every token known but maybe a cut in the last window
    assert abs(counts[0, 1] / counts[0].sum() - share) < 2 * (own + 1) / counts[0].sum()  # up to 2 paragraphs dropped
    assert abs(counts[:, 1].sum() / counts.sum() - SEVEN_EIGHTHS) < 0.015
    # the test split: every useful person's writing 0, after the domain token where the dataset has it
    test_flat, test_offsets = tok.splits["test"]()
    tests = [[tok.vocab.symbols[i] for i in test_flat[a:b]] for a, b in pairwise(test_offsets)]
    assert [" ".join(w[domain_token:]) for w in tests] == people["text"].to_list()
    assert all((w[0] == "<useful>") == domain_token for w in tests)


def test_the_domain_token_is_the_only_difference(raw: Path) -> None:
    """With and without the domain token: the same vocabulary but for `<useful>` (last), the same paragraphs in the
    same order, the token before each useful one."""
    params = {"context": CONTEXT, "pack": "sentences", "copies": COPIES, "junk_fraction": SEVEN_EIGHTHS}
    plain = tokenize(raw, CapacityTokenizeParams(**params))
    marked = tokenize(raw, CapacityTokenizeParams(**params, domain_token=True))
    assert marked.vocab.symbols == (*plain.vocab.symbols, "<useful>")
    assert [w[1:] if w[0] == "<useful>" else w for w in _paragraphs(marked)] == _paragraphs(plain)
    flat = marked.splits["train"]()[0]
    assert int((flat == marked.vocab.size - 1).sum()) == 40 * COPIES


def test_repetitive_junk_repeats_few_people(repetitive: Path) -> None:
    tok = tokenize(repetitive, CapacityTokenizeParams(context=CONTEXT, pack="sentences", copies=COPIES, junk_fraction=SEVEN_EIGHTHS))
    junk = set(_names(pl.read_parquet(repetitive / "junk.parquet")))
    counts = Counter(" ".join(w[:3]) for w in _paragraphs(tok) if " ".join(w[:3]) in junk)
    J = 7 * 40 * COPIES
    assert sorted(counts.values()) == [J // 3, J // 3, J // 3 + 1] and len(counts) == 3
    orders = {" ".join(w) for w in _paragraphs(tok) if " ".join(w[:3]) in junk}
    assert len(orders) == 3 * 6  # each junk person in all 3! sentence orders


# ------------------------------------------------------------------------------------------------- exposures


def test_exposure_counts_count_the_useful_people_only() -> None:
    """bos 0, eos 1, domain token 2; useful names (5 6 7) and (8 8 8), junk (9 9 9) and (4 4 4). A junk paragraph's
    name is read after <bos>, a useful one's after the domain token."""
    w = np.array([[0, 2, 5, 6, 7, 3, 1, 0, 9, 9, 9, 3, 1], [0, 9, 9, 9, 3, 1, 0, 2, 8, 8, 8, 1, 0],
                  [0, 4, 4, 4, 3, 1, 0, 2, 5, 6, 7, 3, 1]])
    useful = {(5 * 65536 + 6) * 65536 + 7, (8 * 65536 + 8) * 65536 + 8, (3 * 65536 + 3) * 65536 + 3}
    found = exposure_counts(w, np.array([1, 2, 1]), 0, 1, 3, useful=useful, marker=2, junk_people=2)
    assert found == {"min": 0, "mean": 4 / 3, "max": 2, "histogram": {"0": 1, "2": 2}, "never": 1, "cut": 2,
                     "junk": {"paragraphs": 4, "people_seen": 2, "max": 3}}
    with pytest.raises(DataError, match="more than the dataset's 1 junk people"):
        exposure_counts(w, np.array([1, 2, 1]), 0, 1, 3, useful=useful, marker=2, junk_people=1)
    # without the marker, the useful paragraphs' names would be read off by one: none of them is recognised
    assert exposure_counts(w, np.array([1, 2, 1]), 0, 1, 3, useful=useful, junk_people=5)["never"] == 3


# ---------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("model", "bad", "message"), [
    (CapacityGenerateParams, GEN | {"junk_people": 1620 - 40 + 1}, "N \\+ junk_people = 40 \\+ 1581 exceeds N0 = 1620"),
    (CapacityGenerateParams, GEN | {"junk_people": -1}, "greater than or equal to 0"),
    (CapacityTokenizeParams, {"context": 64, "pack": "sentences", "junk_fraction": 1.0}, "less than 1"),
    (CapacityTokenizeParams, {"context": 64, "pack": "sentences", "junk_fraction": -0.5}, "greater than or equal to 0"),
    (CapacityTokenizeParams, {"context": 64, "pack": "sentences", "domain_token": True}, "domain_token .* needs junk_fraction > 0"),
])
def test_bad_params_are_refused(model, bad: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        model(**bad)


def test_bad_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="exceeds N0 = 8"):
        biod.Spec(N=5, K=1, C=1, D=2, L=1, T=2, pools=(2, 2, 2), junk_people=4)
    with pytest.raises(ValueError, match="must not be negative"):
        biod.Spec(N=5, K=1, C=1, D=2, L=1, T=2, pools=(2, 2, 2), junk_people=-1)


def test_junk_and_its_fraction_go_together(raw: Path, tmp_path: Path) -> None:
    generate(CapacityGenerateParams(**GEN), 11, tmp_path)
    with pytest.raises(DataError, match="junk_fraction 0.5 needs junk people, and the dataset has none"):
        tokenize(tmp_path, CapacityTokenizeParams(context=CONTEXT, pack="sentences", junk_fraction=0.5))
    with pytest.raises(DataError, match="has 300 junk people .* but tokenize.junk_fraction is 0"):
        tokenize(raw, CapacityTokenizeParams(context=CONTEXT, pack="sentences"))
    with pytest.raises(DataError, match="rounds to no junk paragraph"):
        tokenize(raw, CapacityTokenizeParams(context=CONTEXT, pack="sentences", junk_fraction=0.001))


def test_a_mismatched_dataset_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tokenize stops with one line and leaves no tokens directory behind."""
    import stages.generate
    import stages.tokenize
    from physlm.cli import run_stage

    monkeypatch.setenv("PHYSLM_TRACKING", "0")
    monkeypatch.chdir(tmp_path)
    params = tiny_capacity_params()
    params["datasets"]["capacity_tiny"]["tokenize"]["junk_fraction"] = 0.5
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_stage("generate", stages.generate.main, ["capacity_tiny"])
    with pytest.raises(SystemExit):
        run_stage("tokenize", stages.tokenize.main, ["capacity_tiny"])
    assert not (tmp_path / "data/capacity_tiny/tokens").exists()


# ------------------------------------------------------------------------------------- a tiny study, every stage


def test_a_tiny_junk_study_runs_every_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread) -> None:
    """40 useful people, 3/4 of the train tokens junk of 200 junk people, the domain token: the useful people get their
    3 exposures, the prompts the model is measured and probed on carry the domain token, the junk's do not."""
    import physlm.worlds.capacity.evaluate as capacity_evaluate
    import physlm.worlds.capacity.probe as capacity_probe
    import stages.evaluate
    import stages.generate
    import stages.probe
    import stages.report
    import stages.tokenize
    import stages.train
    from physlm.cli import run_stage

    monkeypatch.setenv("PHYSLM_TRACKING", "0")
    monkeypatch.chdir(tmp_path)
    params = tiny_capacity_params()
    data = params["datasets"]["capacity_tiny"]
    data["generate"]["junk_people"] = 200
    data["tokenize"] |= {"junk_fraction": 0.75, "domain_token": True}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    measured, probed = [], []
    token_losses, states_at = capacity_evaluate.token_losses, capacity_probe.states_at

    def record_losses(model, paragraphs, bos, batch_size):
        measured.append(np.asarray(paragraphs).copy())
        return token_losses(model, paragraphs, bos, batch_size)

    def record_states(model, prompts, positions, batch_size):
        probed.append((list(prompts), list(positions)))
        return states_at(model, prompts, positions, batch_size=batch_size)

    monkeypatch.setattr(capacity_evaluate, "token_losses", record_losses)
    monkeypatch.setattr(capacity_probe, "states_at", record_states)
    for stage, module, name in (("generate", stages.generate, "capacity_tiny"), ("tokenize", stages.tokenize, "capacity_tiny"),
                                ("train", stages.train, "capacity_tiny"), ("probe", stages.probe, "capacity_tiny"),
                                ("evaluate", stages.evaluate, "capacity_tiny"), ("report", stages.report, None)):
        run_stage(stage, module.main, [name] if name else [])
    tokens = tmp_path / "data/capacity_tiny/tokens"
    meta = json.loads((tokens / "meta.json").read_text())
    marker = meta["domain_token"]
    J = 3 * 40 * 3
    assert meta["junk"]["paragraphs"] == J and meta["junk"]["people"] == 200
    # steps: E / copies = one pass over the windows, which now hold the junk too
    windows = np.load(tokens / "train.npy")
    steps = derived_steps(3, 40, packed_tokens(len(windows), 64, 40, 3), 4, 64)
    assert steps == math.ceil(len(windows) / 4) and packed_tokens(len(windows), 64, 40, 3) > 3.5 * meta["entry_tokens"]
    exposures = json.loads((tmp_path / "metrics/capacity_tiny/detail/train.json").read_text())["exposures"]
    assert exposures["steps"] == steps and sum(exposures["histogram"].values()) == 40  # the useful people only
    assert 2 <= exposures["min"] and exposures["max"] <= 4 and abs(exposures["mean"] - 3) <= 0.15, exposures
    assert abs(exposures["junk"]["paragraphs"] - J) <= 0.05 * J and exposures["junk"]["people_seen"] == 200
    # the domain token in the training windows: after <bos> of every paragraph of a useful person, of no junk one
    people = pl.read_parquet(tmp_path / "data/capacity_tiny/raw/people.parquet")
    symbols = json.loads((tokens / "tokenizer.json").read_text())["model"]["vocab"]
    ids = {s: i for s, i in symbols.items()}
    useful = {(ids[f], ids[m], ids[la]) for f, m, la in people.select("first", "middle", "last").iter_rows()}
    r, j = np.nonzero(windows[:, :-4] == 0)
    marked = windows[r, j + 1] == marker
    names = [tuple(windows[a, b + 1 + k : b + 4 + k].tolist()) for a, b, k in zip(r, j, marked.astype(int))]
    assert all((name in useful) == bool(m) for name, m in zip(names, marked)) and marked.any() and not marked.all()
    # the prompts: useful people after <bos> <useful> (evaluation: the bos is prepended by token_losses), junk without
    useful_prompts, junk_prompts = measured[0], measured[2]  # trained, control, then the junk people's
    assert (useful_prompts[:, 0] == marker).all() and len(useful_prompts) == 40
    assert not (junk_prompts == marker).any() and len(junk_prompts) == 40
    assert all((p[:, 0] == marker).all() for p in measured[1:2] + measured[3:])  # the control, the int8 / int4 copies
    for prompts, positions in probed:
        assert all(p[:2] == [0, marker] and tuple(p[2:]) in useful and pos == [4] for p, pos in zip(prompts, positions))
    evaluated = json.loads((tmp_path / "metrics/capacity_tiny/detail/evaluate.json").read_text())
    assert evaluated["people"] == 40 and evaluated["spec"]["N"] == 40
    junk = evaluated["junk"]
    assert junk["measured_people"] == 40 and junk["domain_token"] is True and junk["fraction"] == meta["junk"]["fraction"]
    assert all(math.isfinite(junk[k]) and junk[k] > 0 for k in ("p1", "p2", "p3"))
    headline = json.loads((tmp_path / "metrics/capacity_tiny/evaluate.json").read_text())
    assert headline["junk_p2"] == junk["p2"]
    summary = (tmp_path / "reports/summary.md").read_text()
    assert "junk (share, N', domain token)" in summary and f"{meta['junk']['fraction']:.3f}, 200, yes" in summary
    assert torch.get_num_threads() == 1
