"""The capacity world's streamed train split (physlm/worlds/capacity/rounds.py, stream.py; train.stream): window j a
pure function of (seed, j) and the same for 1 and 2 stream workers; the first E rounds' paragraphs are the
materialised split's writings with copies = E; the round schedule's closed form against its greedy table, the table
on random lengths against a plain sequential packer written here; the realized exposures against the windows
themselves; a tiny study streamed and materialised through generate, tokenize, train and evaluate; streaming with
junk refused."""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from itertools import pairwise
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from test_capacity import parse
from test_capacity_stages import tiny_capacity_params

from physlm import stream as engine
from physlm.errors import DataError, ParamsError
from physlm.stream import Stream, StreamSpec
from physlm.train import TrainConfig, stream_rows
from physlm.worlds.capacity.params import CapacityTokenizeParams, CapacityTrainParams
from physlm.worlds.capacity.rounds import (
    Constant,
    Greedy,
    exposures,
    permutation,
    person_counts,
)
from physlm.worlds.capacity.stream import Source
from physlm.worlds.capacity.tokenize import tokenize
from physlm.worlds.capacity.train import exposure_counts, plan

N, E = 40, 3  # GENERATE's people; the rounds (= copies) compared
ENTRY = 3 + 2 * (2 + 2 + 3)  # GENERATE's paragraph tokens without <bos>/<eos>: 17, 19 window tokens


def build(root: Path, context: int, copies: int = E, generate: dict | None = None, tok: dict | None = None,
          studies: dict | None = None) -> Path:
    """A params.yaml of one tiny capacity dataset (and `studies` on it) in `root`, generated and tokenized."""
    import stages.generate
    import stages.tokenize
    from physlm.cli import run_stage

    params = tiny_capacity_params()
    data = params["datasets"]["capacity_tiny"]
    data["generate"].update(generate or {})
    data["tokenize"] = {"context": context, "pack": "sentences", "copies": copies} | (tok or {})
    params["studies"] = studies or {}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_stage("generate", stages.generate.main, ["capacity_tiny"])
    run_stage("tokenize", stages.tokenize.main, ["capacity_tiny"])
    return root / "data/capacity_tiny"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """context 64: 65-token windows, 3 paragraphs of 19 whole and one cut in each."""
    root = tmp_path_factory.mktemp("cstream")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PHYSLM_TRACKING", "0")
        mp.chdir(root)
        return build(root, context=64)


def paragraphs_of(windows: np.ndarray, bos: int = 0, eos: int = 1) -> list[tuple[int, ...]]:
    """The paragraphs lying whole in the windows (from a <bos> to the next <eos> in the same row), in order."""
    out = []
    for row in np.asarray(windows).tolist():
        starts = [k for k, t in enumerate(row) if t == bos]
        for k in starts:
            if eos in row[k:]:
                out.append(tuple(row[k + 1 : row.index(eos, k)]))
    return out


def split_paragraphs(flat: np.ndarray, offsets: np.ndarray) -> list[tuple[int, ...]]:
    return [tuple(flat[a:b].tolist()) for a, b in pairwise(offsets)]


def test_the_stream_files_and_sample(data: Path) -> None:
    record = json.loads((data / "raw/stream.json").read_text())
    assert record["world"] == "capacity" and record["generate"]["N"] == N and record["generate"]["stream_sample"] == 4
    assert (data / "tokens/stream.json").read_text() == (data / "raw/stream.json").read_text()
    frame = pl.read_parquet(data / "tokens/stream_sample.parquet")
    assert frame["window"].unique().sort().to_list() == [0, 1, 2, 3] and (frame["cut"] == 0).all()
    people = pl.read_parquet(data / "raw/people.parquet")
    first = frame.filter(pl.col("round") == 0)  # round 0: writing 0, people.parquet's text
    assert first.height == 4 * 4 and first["text"].to_list() == [people["text"][i] for i in first["person"]]
    assert first["person"].to_list() == permutation(record["seed"], 0, N)[first["slot"].to_list()].tolist()
    assert (frame["tokens"] == ENTRY).all()


def test_window_is_pure_and_the_same_for_1_and_2_workers(data: Path) -> None:
    spec = StreamSpec.load(data / "tokens")
    windows = spec.windows(range(12))
    assert windows.shape == (12, 65) and (windows[:, 0] == 0).all()
    engine._source.cache_clear()  # a fresh source, asked in another order
    assert all(np.array_equal(spec.window(j), windows[j]) for j in reversed(range(12)))
    cfg = TrainConfig(steps=3, batch_size=4, micro_batch_size=2, lr=1e-3)
    keys = [(s, m) for s in range(3) for m in range(2)]
    for workers in (1, 2):
        producer = Stream(spec, workers).open(stream_rows(s, m, cfg) for s, m in keys)
        try:
            got = np.concatenate([next(producer) for _ in keys])
        finally:
            producer.close()
        assert np.array_equal(got, windows), workers


def test_the_first_rounds_hold_the_materialised_writings(data: Path) -> None:
    """The whole paragraphs of the windows E rounds take, the first E x N of them, are the materialised split's
    paragraphs with copies = E as a multiset; every person E times, each time another writing, writing 0 first."""
    spec = StreamSpec.load(data / "tokens")
    source = Source(spec)
    count = source.schedule.windows(E * N)
    assert count == -(-E * N // 3)
    found = paragraphs_of(spec.windows(range(count)))
    assert len(found) >= E * N
    streamed = found[: E * N]
    splits = tokenize(data / "raw", CapacityTokenizeParams(context=64, pack="sentences", copies=E)).splits
    materialised, writing0 = (split_paragraphs(*splits[split]()) for split in ("train", "test"))
    assert Counter(streamed) == Counter(materialised) and len(set(streamed)) > N
    by_name = Counter(p[:3] for p in streamed)
    assert len(by_name) == N and set(by_name.values()) == {E}
    assert sorted(streamed[:N]) == sorted(writing0)  # round 0 is every person's writing 0 (the test split)
    vocab = json.loads((data / "tokens/tokenizer.json").read_text())["model"]["vocab"]
    symbols = {i: s for s, i in vocab.items()}
    for p in streamed[: 2 * N]:
        parse(" ".join(symbols[t] for t in p))  # the template, read back by test_capacity's parser


def test_closed_form_equals_the_greedy_table_on_constant_lengths() -> None:
    for people, width, length in ((40, 65, 19), (40, 57, 19), (3, 65, 19), (1, 100, 7), (5, 20, 20), (7, 30, 4)):
        closed = Constant(width, length)
        table = Greedy(people, width, lambda r, n=people, k=length: np.full(n, k))
        assert [closed.start(j) for j in range(150)] == [table.start(j) for j in range(150)], (people, width, length)
        assert [closed.windows(p) for p in range(200)] == [table.windows(p) for p in range(200)]
        assert [closed.cut(w) for w in range(60)] == [table.cut(w) for w in range(60)]
    assert Constant(65, 19).q == 3 and Constant(57, 19).cut(10) == 0 and Constant(65, 19).cut(10) == 10


def sequential(lengths: list[int], width: int) -> tuple[list[int], list[bool]]:
    """Window starts and cuts of a plain packer: from a window's first paragraph on, add paragraphs until the window's
    tokens are reached; those whose tokens fit are whole, the next window starts at the first that did not."""
    starts, cuts, n = [], [], 0
    while True:
        total, k = 0, n
        while total < width and k < len(lengths):
            total += lengths[k]
            k += 1
        if total < width:  # the list's end: not a full window
            return starts, cuts
        whole = k - 1 if total > width else k
        starts.append(n)
        cuts.append(total > width)
        n = whole


@pytest.mark.parametrize("people,width,low", [(50, 40, 2), (7, 40, 2), (3, 40, 5), (1, 25, 2), (20, 40, 30)])
def test_the_greedy_table_equals_a_sequential_packer(people: int, width: int, low: int) -> None:
    def lengths(r: int) -> np.ndarray:
        return np.random.default_rng([people, r]).integers(low, width + 1, people)

    rounds = 60 if people < 10 else 12
    flat = np.concatenate([lengths(r) for r in range(rounds)]).tolist()
    starts, cuts = sequential(flat, width)
    keep = len(starts) - 5  # well inside the rounds listed
    starts, cuts = starts[:keep], cuts[:keep]
    order = np.random.default_rng(7).permutation(len(starts)).tolist()
    table = Greedy(people, width, lengths)  # asked in a random order: the table grows as far as asked
    assert {j: table.start(j) for j in order} == dict(enumerate(starts))
    assert all(table.cut(w) == sum(cuts[:w]) for w in range(len(cuts)))
    last = starts[-1]
    assert all(table.windows(p) == sum(s < p for s in starts) for p in range(last))
    assert any(cuts)


def test_lengths_that_no_window_holds_are_refused() -> None:
    with pytest.raises(DataError, match="exceeds a window of 20"):
        Constant(20, 21)
    with pytest.raises(DataError, match="exceeds a window of 20"):
        Greedy(4, 20, lambda r: np.array([3, 3, 21, 3])).start(0)
    with pytest.raises(DataError, match="lengths must be 4 integers"):
        Greedy(4, 20, lambda r: np.array([3, 3])).start(0)


@pytest.mark.parametrize("windows", [1, 13, 40, 41, 47])
def test_the_realized_exposures_are_the_windows(data: Path, windows: int) -> None:
    """`rounds.exposures` of windows 0 .. W-1, computed without them, equals the materialised path's counter run
    on the streamed windows themselves, and each person's count is that of its paragraphs there."""
    spec = StreamSpec.load(data / "tokens")
    source = Source(spec)
    made = spec.windows(range(windows))
    counted = exposure_counts(made, np.ones(windows, dtype=np.int64), 0, 1, N)
    found = exposures(source.schedule, N, windows)
    assert {k: found[k] for k in counted} == counted
    assert found["paragraphs"] == 3 * windows and found["rounds"] == -(-3 * windows // N)
    per_person = Counter(p[:3] for p in paragraphs_of(made))
    names = {tuple(source.writer.ids(i, 0)[:3].tolist()): i for i in range(N)}
    counts = person_counts(0, N, found["paragraphs"])
    assert all(per_person.get(name, 0) == counts[i] for name, i in names.items())


def test_the_stream_plan(data: Path) -> None:
    """Steps from the round schedule, each person E times and the last update's overshoot once more."""
    base = TrainConfig(steps=1000, batch_size=4, micro_batch_size=2, lr=1e-3)
    params = CapacityTrainParams.model_validate(tiny_capacity_params()["train"] | {"stream": True, "exposures": E,
                                                                                  "batch_size": 4, "micro_batch_size": 2})
    found = plan(data / "tokens", params, base, 0)
    steps = math.ceil(math.ceil(E * N / 3) / 4)  # 120 paragraphs, 3 whole a window: 40 windows exactly, no overshoot
    detail = found.detail["exposures"]
    assert found.train is None and found.config.steps == steps == detail["steps"]
    assert detail["histogram"] == {str(E): N} and detail["overshoot"] == 0 and detail["stream"] is True
    assert detail["rounds"] == detail["copies"] == E and detail["cut"] == steps * 4 and detail["passes"] == E
    odd = plan(data / "tokens", params.model_copy(update={"exposures": 2.5}), base, 0).detail["exposures"]
    # 100 paragraphs: 34 windows, 9 updates = 36 windows = 108 paragraphs: 8 people of round 2 once more
    assert odd["steps"] == 9 and odd["overshoot"] == 8 and odd["histogram"] == {"2": 20 - 8, "3": 20 + 8}


def test_a_tiny_study_streamed_and_materialised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread) -> None:
    """generate -> tokenize -> train -> evaluate, once on the stream (train.stream) and once on the materialised split
    with copies = E: 57-token windows hold 3 paragraphs of 19 exactly, so both train 10 updates of 4 windows and
    every person E times."""
    import stages.evaluate
    import stages.train
    from physlm.cli import run_stage

    monkeypatch.setenv("PHYSLM_TRACKING", "0")
    monkeypatch.chdir(tmp_path)
    train = {"steps": 1000, "exposures": E, "batch_size": 4, "micro_batch_size": 2, "eval_every": 5,
             "checkpoint_every": 5, "log_every": 5, "warmup_steps": 1, "eval_batches": 1}
    study = {"world": "capacity", "data": "capacity_tiny", "model": {"depth": 1, "width": 32, "heads": 2}, "probe": {},
             "evaluate": {"control": False, "quantize": []}}
    studies = {"streamed": study | {"train": train | {"stream": True, "stream_workers": 1}},
               "materialised": study | {"train": dict(train)}}
    build(tmp_path, context=56, studies=studies)
    for name in studies:
        run_stage("train", stages.train.main, [name])
    run_stage("evaluate", stages.evaluate.main, ["streamed"])
    detail = {name: json.loads((tmp_path / f"metrics/{name}/detail/train.json").read_text()) for name in studies}
    streamed, materialised = detail["streamed"]["exposures"], detail["materialised"]["exposures"]
    assert detail["streamed"]["stream"] is True and detail["materialised"]["stream"] is False
    assert abs(streamed["steps"] - materialised["steps"]) <= 1 and streamed["steps"] == 10
    assert streamed["histogram"] == materialised["histogram"] == {str(E): N}
    assert streamed["cut"] == materialised["cut"] == 0 and streamed["overshoot"] == 0 and streamed["rounds"] == E
    for name in studies:
        assert pl.read_csv(tmp_path / f"metrics/{name}/loss.csv")["step"].max() == 10
        assert detail[name]["tokens_seen"] == 10 * 4 * 56
    evaluated = json.loads((tmp_path / "metrics/streamed/detail/evaluate.json").read_text())
    assert evaluated["people"] == N and evaluated["trained"]["p1"] > 0


def test_streaming_with_junk_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture) -> None:
    import stages.train
    from physlm.cli import run_stage

    monkeypatch.setenv("PHYSLM_TRACKING", "0")
    monkeypatch.chdir(tmp_path)
    study = {"world": "capacity", "data": "capacity_tiny", "model": {"depth": 1, "width": 32, "heads": 2}, "probe": {},
             "evaluate": {}, "train": {"steps": 4, "batch_size": 4, "micro_batch_size": 2, "stream": True, "warmup_steps": 1}}
    data = build(tmp_path, context=64, copies=2, generate={"junk_people": 30}, tok={"junk_fraction": 0.5},
                 studies={"junky": study})
    assert json.loads((data / "tokens/meta.json").read_text())["junk"]["paragraphs"] == N * 2
    capsys.readouterr()  # generate's and tokenize's progress
    with pytest.raises(SystemExit) as stop:
        run_stage("train", stages.train.main, ["junky"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 1 and len(lines) == 1 and "train.stream" in lines[0] and "junk" in lines[0], lines
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics/junky").exists()
    with pytest.raises(ParamsError, match="not streamed"):
        plan(data / "tokens", CapacityTrainParams.model_validate(tiny_capacity_params()["train"] | {"stream": True}),
             TrainConfig(steps=4, batch_size=4, micro_batch_size=2, lr=1e-3), 0)


def test_a_stream_needs_pack_sentences(data: Path, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    shutil.copytree(data / "tokens", tokens)
    meta = json.loads((tokens / "meta.json").read_text())
    (tokens / "meta.json").write_text(json.dumps(meta | {"pack": "stream"}))
    params = CapacityTrainParams.model_validate(tiny_capacity_params()["train"] | {"stream": True})
    with pytest.raises(ParamsError, match="need pack: sentences"):
        plan(tokens, params, TrainConfig(steps=4, batch_size=4, micro_batch_size=2, lr=1e-3), 0)


# ------------------------------------------------------------------------------------ bioS and bioS^simple streamed

BIOS_POOLS = {"first_names": 10, "middle_names": 8, "last_names": 12, "cities": 9, "universities": 11, "majors": 7,
              "employers": 20}


@pytest.mark.parametrize("simple", [False, True])
@pytest.mark.parametrize("units", ["words", "values"])
def test_bios_lengths_are_the_encoded_writings(simple: bool, units: str) -> None:
    """`biosn.Lengths` (template and value counts, nothing written) equals the token count of every encoded writing."""
    from physlm.bios.people import PoolSizes
    from physlm.worlds.capacity import biosn

    spec = biosn.Spec(N=60, simple=simple, pools=PoolSizes(**BIOS_POOLS), pronouns="random", seed=3)
    persons, vocab = biosn.people(spec), biosn.vocabulary(spec.pools, units)
    lengths = biosn.Lengths(spec, persons, vocab)
    for w in (0, 1, 7):
        found = [len(biosn.encode(vocab, p, biosn.writing(spec, p, w), spans=False)[0]) for p in persons]
        assert lengths(w).tolist() == found, (w, units)
    assert len(set(lengths(0).tolist())) > 1  # lengths do vary, so the greedy table is what is tested


@pytest.mark.parametrize("kind", ["bioS", "bioS_simple"])
def test_bios_streams_the_materialised_writings_in_exact_rounds(kind: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A bioS (bioS^simple) dataset streamed: its windows hold paragraphs whole, the first E rounds' paragraphs are
    the materialised split's with copies = E as a multiset (every person E times), and the plan's exact steps give
    every person E exposures; window j is the same asked twice in another order."""
    monkeypatch.setenv("PHYSLM_TRACKING", "0")
    monkeypatch.chdir(tmp_path)
    people = 30
    generate = {"data": kind, "N": people, "pools": dict(BIOS_POOLS), "workers": 1}
    params = tiny_capacity_params()
    data = params["datasets"]["capacity_tiny"]
    data["generate"] = generate | {"stream_sample": 2}
    data["tokenize"] = {"context": 200, "pack": "sentences", "copies": E}
    params["studies"] = {}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    import stages.generate
    import stages.tokenize
    from physlm.cli import run_stage

    run_stage("generate", stages.generate.main, ["capacity_tiny"])
    run_stage("tokenize", stages.tokenize.main, ["capacity_tiny"])
    tokens = tmp_path / "data/capacity_tiny/tokens"
    spec = StreamSpec.load(tokens)
    source = Source(spec)
    assert source.writer.length is None  # the greedy table
    count = source.schedule.windows(E * people)
    windows = spec.windows(range(count))
    engine._source.cache_clear()
    assert all(np.array_equal(spec.window(j), windows[j]) for j in reversed(range(count)))
    found = paragraphs_of(windows)
    assert len(found) >= E * people
    streamed = found[: E * people]
    splits = tokenize(tmp_path / "data/capacity_tiny/raw",
                      CapacityTokenizeParams(context=200, pack="sentences", copies=E)).splits
    materialised = split_paragraphs(*splits["train"]())
    assert Counter(streamed) == Counter(materialised)
    assert (len(set(streamed)) == people) == (kind == "bioS_simple")
    assert set(Counter(p[:3] for p in streamed).values()) == {E}
    base = TrainConfig(steps=1000, batch_size=2, micro_batch_size=2, lr=1e-3)
    train = CapacityTrainParams.model_validate(tiny_capacity_params()["train"] | {"stream": True, "exposures": E,
                                                                                 "batch_size": 2, "micro_batch_size": 2})
    detail = plan(tokens, train, base, 0).detail["exposures"]
    assert detail["steps"] == math.ceil(count / 2)
    assert detail["min"] == E and detail["max"] <= E + 1 and detail["histogram"].get(str(E + 1), 0) == detail["overshoot"]
    counted = exposure_counts(spec.windows(range(detail["steps"] * 2)), np.ones(detail["steps"] * 2, dtype=np.int64), 0, 1,
                              people)
    assert {k: detail[k] for k in counted} == counted
