"""physlm.stream: windows streamed from the world generator — a pure function of (seed, j), the same on any
number of workers, training-split iGSM problems the judge accepts, grammar sentences in the language, the
recorded sample equal to the first windows, exact resume of train() on a stream, and the train stage end to
end (plus the one-line error of a biography study asking to stream)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import yaml

from physlm.worlds.cfg.params import CfgGenerateParams, PerturbParams, RandomGrammarParams
from physlm.worlds.igsm.params import IgsmGenerateParams
from physlm.worlds.igsm.tokenize import vocabulary
from physlm.worlds.cfg.language import resolve_grammar
from physlm.io import write_json
from physlm.model import GPT, GPTConfig
from physlm.stream import Producer, Stream, StreamSpec, stream_record
from physlm.worlds.igsm.text import PROB, SOL, igsm_sequence, parse_generation
from physlm.worlds.cfg.tokenize import cfg_vocab
from physlm.train import TrainConfig, stream_rows, train
from physlm.worlds.cfg.grammar import Judge, format_grammar
from physlm.worlds.igsm.graph import allowed_buckets
from physlm.worlds.igsm.judge import judge

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")

IGSM = IgsmGenerateParams(max_op=4, max_edge=6, max_layers=3, max_items=2, names=4, fmt="pq", split_rule="paper",
                          train_problems=10, eval_problems=10, ood_ops=[5], workers=1, stream_sample=6)
GRAMMAR = RandomGrammarParams(seed=3, symbols_per_level=[1, 3, 3, 4], rules_per_symbol=(2, 2), rule_length=(3, 4))
CFG = CfgGenerateParams(grammar=GRAMMAR, train_sentences=10, test_sentences=10, stream_sample=5)


def igsm_spec(tmp_path: Path, seed: int = 0, context: int = 256, pack: str = "sentences") -> StreamSpec:
    """A tokens directory of a tiny iGSM dataset (what generate and tokenize write for streaming), loaded."""
    tokens = tmp_path / f"igsm-{seed}-{pack}"
    tokens.mkdir()
    write_json(tokens / "stream.json", stream_record("igsm", seed, IGSM))
    vocab = vocabulary("names")
    write_json(tokens / "meta.json", {"world": "igsm", "context": context, "pack": pack, "vocab_size": vocab.size,
                                      "bos_id": 0, "eos_id": 1, "units": "names"})
    return StreamSpec.load(tokens)


def cfg_spec(tmp_path: Path, context: int = 32, pack: str = "stream", generate: CfgGenerateParams = CFG) -> StreamSpec:
    tokens = tmp_path / f"cfg-{context}-{pack}"
    tokens.mkdir()
    grammar = resolve_grammar(generate.grammar)
    write_json(tokens / "stream.json", stream_record("cfg", 0, generate, grammar=format_grammar(grammar), bags=""))
    write_json(tokens / "meta.json", {"world": "cfg", "context": context, "pack": pack, "bos_id": 0, "eos_id": 1,
                                      "vocab_size": cfg_vocab(len(grammar.terminals)).size})
    return StreamSpec.load(tokens)


def whole_examples(window: np.ndarray) -> list[np.ndarray]:
    """The token ids of every example that lies whole in a window (<bos> ids <eos>)."""
    bos = np.flatnonzero(window == 0)
    out = []
    for start in bos:
        ends = np.flatnonzero(window[start + 1 :] == 1)
        if len(ends):
            out.append(window[start + 1 : start + 1 + ends[0]].astype(np.int64))
    return out


def test_window_is_a_pure_function_of_seed_and_index(tmp_path: Path) -> None:
    spec = igsm_spec(tmp_path)
    first = spec.windows([0, 1, 2])
    assert first.shape == (3, 257) and first.dtype == np.uint16
    assert np.array_equal(spec.windows([2, 0, 1]), first[[2, 0, 1]])  # no state carried between windows
    assert not np.array_equal(first[0], first[1])
    assert not np.array_equal(igsm_spec(tmp_path, seed=1).window(0), first[0])
    assert all(first[:, 0] == 0)  # "sentences": every window starts at an example's <bos>


def test_one_and_two_workers_give_the_same_windows(tmp_path: Path) -> None:
    spec = cfg_spec(tmp_path)
    rows = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    made = {}
    for workers in (1, 2):
        producer = Producer(spec, iter(rows), workers, ahead=3)
        try:
            made[workers] = list(producer)
        finally:
            producer.close()
    assert len(made[1]) == len(rows) and len({w.tobytes() for batch in made[1] for w in batch}) == 10
    for a, b, js in zip(made[1], made[2], rows):
        assert np.array_equal(a, b) and np.array_equal(a, spec.windows(js))


def test_streamed_igsm_problems_are_training_problems_the_judge_accepts(tmp_path: Path) -> None:
    spec, vocab = igsm_spec(tmp_path), vocabulary("names")
    train_buckets, checked = allowed_buckets(IGSM.split_rule, "train"), 0
    for j in range(8):
        packed = spec.packed(j)
        assert all(e.payload.bucket in train_buckets for e in packed.examples)
        for example, ids in zip(packed.examples, whole_examples(packed.window)):
            text = vocab.decode(ids)
            problem_text, _, rest = text.removeprefix(f"{PROB} ").partition(f" {SOL} ")
            solution, answer = parse_generation(rest)
            assert problem_text == example.payload.problem
            assert judge(example.payload, solution, answer).correct
            checked += 1
    assert checked >= 8


def test_streamed_grammar_sentences_are_in_the_language(tmp_path: Path) -> None:
    spec = cfg_spec(tmp_path, context=64, pack="sentences")
    accepts = Judge(resolve_grammar(CFG.grammar))
    sentences = [ids - 1 for j in range(10) for ids in whole_examples(spec.window(j))]
    assert len(sentences) >= 10 and all(accepts(list(s)) for s in sentences)
    assert not accepts(list(sentences[0][:-1]))  # the check can fail


def test_streamed_perturbation_follows_the_training_split_rule(tmp_path: Path) -> None:
    """A streamed sentence marked perturbed always differs from the sentence sampled (the materialized
    split's `perturb_sentences` rule: at least one token changed), about `fraction` of them are marked, and the
    others are the sampled sentence unchanged."""
    noisy = CFG.model_copy(update={"perturb": PerturbParams(fraction=0.5, rate=0.02)})
    spec = cfg_spec(tmp_path, context=64, pack="sentences", generate=noisy)
    payloads = [e.payload for j in range(40) for e in spec.packed(j).examples]
    hits = [(sentence, terminals) for sentence, terminals, _, hit in payloads if hit]
    assert 0.3 < len(hits) / len(payloads) < 0.7
    assert all(list(terminals) != list(sentence.tokens) for sentence, terminals in hits)
    assert all(list(t) == list(s.tokens) for s, t, _, hit in payloads if not hit)


def rebuilt_windows(frame: pl.DataFrame, encode, width: int) -> list[np.ndarray]:
    """Each sample window rebuilt from its recorded examples: `<bos> e <eos> ...` from `cut`, width tokens."""
    out = []
    for (_,), rows in frame.group_by(["window"], maintain_order=True):
        stream = np.concatenate([np.concatenate([[0], encode(row), [1]]) for row in rows.iter_rows(named=True)])
        cut = rows["cut"][0]
        out.append(stream[cut : cut + width])
    return out


def test_cfg_sample_is_the_first_windows(tmp_path: Path) -> None:
    spec = cfg_spec(tmp_path, context=48, pack="stream")
    frame = spec.sample_frame()
    assert frame["window"].unique().sort().to_list() == list(range(CFG.stream_sample))
    assert frame["cut"].max() > 0  # the stream layout starts windows anywhere in the first sentence
    rebuilt = rebuilt_windows(frame, lambda row: np.asarray(row["tokens"]) + 1, spec.width)
    assert all(np.array_equal(r, spec.window(j)) for j, r in enumerate(rebuilt))


def test_stream_rows_use_every_window_once_across_ranks() -> None:
    cfg = TrainConfig(steps=3, batch_size=8, micro_batch_size=2, lr=1e-3)
    used = [j for step in range(3) for micro in range(4) for j in stream_rows(step, micro, cfg)]
    assert used == list(range(24))


def run(spec: StreamSpec, out: Path, stop_after: int | None = None):
    model = GPTConfig(vocab_size=spec.vocab_size, context=spec.context, depth=1, width=32, heads=2)
    cfg = TrainConfig(steps=6, batch_size=4, micro_batch_size=2, lr=3e-3, warmup_steps=1, eval_every=3,
                      eval_batches=1, checkpoint_every=2, log_every=1)
    val = spec.windows(range(1000, 1004))
    return train(model, cfg, Stream(spec, workers=1), val, out, stop_after=stop_after, progress=False)


def test_train_on_a_stream_resumes_exactly(tmp_path: Path) -> None:
    spec = cfg_spec(tmp_path)
    whole = run(spec, tmp_path / "whole")
    assert run(spec, tmp_path / "cut", stop_after=3).history[-1]["step"] == 3
    resumed = run(spec, tmp_path / "cut")
    assert resumed.resumed_from == 2

    def losses(result) -> list:
        return [(row["step"], row["loss"], row.get("val_loss")) for row in result.history]

    assert losses(resumed) == losses(whole) and whole.tokens_seen == 6 * 4 * spec.context
    for x, y in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(x, y)
    assert all(0.0 <= row["data_wait"] <= 1.0 for row in whole.history)


# ------------------------------------------------------------------------------------------ stage scripts


def stage(name: str, cwd: Path, target: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PHYSLM_TRACKING": "0"}
    return subprocess.run([sys.executable, "-m", f"stages.{name}", target], cwd=cwd, capture_output=True, text=True,
                          env=env)


def tiny_repo(tmp_path: Path, dataset: str, study_train: dict) -> Path:
    """The repo's params.yaml with one dataset and its study, shrunk."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    data = params["datasets"][dataset]
    params["datasets"], study = {dataset: data}, params["studies"][dataset]
    study.update(model={"depth": 1, "width": 32, "heads": 2},
                 train={"steps": 4, "batch_size": 4, "micro_batch_size": 2, "eval_every": 2, "checkpoint_every": 2,
                        "log_every": 2, "warmup_steps": 1, "eval_batches": 1} | study_train)
    params["studies"] = {dataset: study}
    if dataset == "igsm_demo":
        data["generate"].update(train_problems=40, eval_problems=8, workers=1, stream_sample=4)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


@pytest.mark.slow
def test_train_stage_streams_igsm_and_records_the_sample(tmp_path: Path) -> None:
    repo = tiny_repo(tmp_path, "igsm_demo", {"stream": True, "stream_workers": 1})
    for name in ("generate", "tokenize", "train"):
        proc = stage(name, repo, "igsm_demo")
        assert proc.returncode == 0, f"{name}: {proc.stderr[-2000:]}"
    tokens = repo / "data/igsm_demo/tokens"
    spec = StreamSpec.load(tokens)
    assert json.loads((repo / "data/igsm_demo/raw/stream.json").read_text())["seed"] == 0
    frame = pl.read_parquet(tokens / "stream_sample.parquet")
    assert frame["window"].unique().sort().to_list() == [0, 1, 2, 3] and (frame["split"] == "train").all()
    vocab = vocabulary("names")
    rebuilt = rebuilt_windows(frame, lambda row: vocab.encode(igsm_sequence(row["problem"], row["solution"], row["answer"])),
                              spec.width)
    assert all(np.array_equal(r, spec.window(j)) for j, r in enumerate(rebuilt))
    metrics = json.loads((repo / "metrics/igsm_demo/detail/train.json").read_text())
    assert metrics["stream"] is True and metrics["tokens_seen"] == 4 * 4 * spec.context
    assert 0.0 <= json.loads((repo / "logs/igsm_demo/train.json").read_text())["data_wait"] <= 1.0
    assert (repo / "models/igsm_demo/model.safetensors").is_file()


def test_bio_study_cannot_stream(tmp_path: Path) -> None:
    repo = tiny_repo(tmp_path, "bio_single", {"stream": True})
    proc = stage("train", repo, "bio_single")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert "studies.bio_single.train.stream" in lines[0] and "fixed knowledge" in lines[0]
    assert sorted(p.name for p in repo.iterdir()) == ["params.yaml"]


# ------------------------------------------------------------------------------------------ loss masks


@pytest.fixture
def toy_stream():
    """The tests-only toy world, registered with a stream step (its copy-only loss mask rides on the stream)."""
    import dataclasses

    from physlm import worlds
    from toy_world import WORLD

    assert "toy" not in worlds.names()
    worlds.register(dataclasses.replace(WORLD, steps=frozenset({"stream"})))
    try:
        yield
    finally:
        worlds.unregister("toy")


def toy_spec(tmp_path: Path, context: int = 24, pack: str = "sentences", loss: str = "copy") -> StreamSpec:
    """A tokens directory of a toy dataset of 5-letter strings, masked (`loss: copy`) or not, loaded."""
    from toy_world.params import ToyGenerateParams

    tokens = tmp_path / f"toy-{context}-{pack}-{loss}"
    tokens.mkdir()
    generate = ToyGenerateParams(train_examples=10, test_examples=10, length=5, letters=4)
    write_json(tokens / "stream.json", stream_record("toy", 0, generate))
    meta = {"world": "toy", "context": context, "pack": pack, "vocab_size": 29, "bos_id": 0, "eos_id": 1, "separator": "="}
    if loss == "copy":  # what tokenize writes for a masked train split
        meta |= {"loss": "copy", "eos_loss": True, "loss_mask": {"train": {"targets": 1, "share": 0.5}}}
    write_json(tokens / "meta.json", meta)
    return StreamSpec.load(tokens)


@pytest.mark.parametrize(("pack", "context"), [("sentences", 24), ("stream", 20)])
def test_masked_stream_packs_as_tokenize_does(tmp_path: Path, toy_stream, pack: str, context: int) -> None:
    """A streamed window's (ids, mask) are tokenize's packing (`pack_windows`, `pack_loss`) of the window's
    examples, in both layouts (stream: the materialized stream of its examples from the cut); the mask marks the
    copies and their <eos> only."""
    from physlm.tokenize import pack_loss, pack_windows
    from toy_world.tokenize import encode_masked

    spec = toy_spec(tmp_path, context, pack)
    assert spec.loss and spec.eos_loss and Stream(spec).masked
    cuts = set()
    for j in range(6):
        packed = spec.packed(j)
        flat, offsets, loss = encode_masked([e.payload for e in packed.examples])
        if pack == "sentences":
            ids, mask = (pack_windows(flat, offsets, context, 0, 1, pack=pack)[0],
                         pack_loss(loss, offsets, context, pack=pack, eos_loss=True)[0])
        else:  # one window holding the whole stream of the examples, from the cut
            whole = len(flat) + 2 * (len(offsets) - 1) - 1
            ids = pack_windows(flat, offsets, whole, 0, 1, pack=pack)[0][packed.cut : packed.cut + spec.width]
            mask = pack_loss(loss, offsets, whole, pack=pack, eos_loss=True)[0][packed.cut : packed.cut + spec.width]
        assert np.array_equal(packed.window, ids) and np.array_equal(packed.loss, mask)
        marker, copy = None, []  # a token is in a copy when the last <bos> or `=` before it is `=`
        for t in packed.window.tolist():
            marker = t if t in (0, 2) else marker
            copy.append(t == 1 or (t >= 3 and marker == 2))
        if pack == "sentences":
            assert packed.loss.tolist() == [int(c) for c in copy]
        else:  # a window cut inside an example's prompt before its `=` does not know it is in the prompt
            first = next(i for i, t in enumerate(packed.window.tolist()) if t in (0, 2))
            assert packed.loss[first:].tolist() == [int(c) for c in copy[first:]]
        cuts.add(packed.cut)
    assert pack == "sentences" or len(cuts) > 1
    batch = spec.batch([3, 1])
    assert np.array_equal(batch.tokens, spec.windows([3, 1]))
    assert np.array_equal(batch.loss, np.stack([spec.packed(3).loss, spec.packed(1).loss]))


def test_unmasked_toy_stream_hands_out_bare_windows(tmp_path: Path, toy_stream) -> None:
    spec = toy_spec(tmp_path, loss="all")
    assert not spec.loss and spec.packed(0).loss is None and isinstance(spec.batch([0, 1]), np.ndarray)


def test_stream_examples_must_agree_with_the_tokenized_mask(tmp_path: Path, toy_stream) -> None:
    """Examples with masks on a dataset whose train split has none (or the reverse) are a one-line error."""
    import dataclasses

    from physlm.errors import DataError

    spec = toy_spec(tmp_path, loss="copy")
    with pytest.raises(DataError, match="lacks a loss mask"):
        dataclasses.replace(spec, tokens=spec.tokens.replace('"copy"', '"all"')).packed(0)
    with pytest.raises(DataError, match="has a loss mask"):
        dataclasses.replace(spec, loss=False).packed(0)


class InProcess:
    """A masked stream made in this process (the spawned workers of `Stream` do not know a registered world)."""

    def __init__(self, spec: StreamSpec) -> None:
        self.spec, self.width, self.masked = spec, spec.width, spec.loss

    def identity(self) -> str:
        return self.spec.identity()

    def open(self, rows):
        return Batches(self.spec.batch(js) for js in rows)


class Batches:
    def __init__(self, made) -> None:
        self.made = made

    def __next__(self):
        return next(self.made)

    def close(self) -> None:
        pass


def test_training_on_a_masked_stream_takes_the_loss_on_its_targets(tmp_path: Path, toy_stream) -> None:
    """The first update's loss is the masked loss of the fresh model on stream windows 0..3, the targets counted
    are theirs, and a resumed run equals an uninterrupted one."""
    from test_train import hand_loss

    spec = toy_spec(tmp_path)
    model = GPTConfig(vocab_size=spec.vocab_size, context=spec.context, depth=1, width=32, heads=2)
    cfg = TrainConfig(steps=6, batch_size=4, micro_batch_size=4, lr=3e-3, eval_every=3, eval_batches=1,
                      checkpoint_every=2, log_every=1)
    val = spec.batch(range(1000, 1004))
    whole = train(model, cfg, InProcess(spec), val, tmp_path / "whole", progress=False)
    torch.manual_seed(cfg.seed)
    first = spec.batch(range(4))
    with torch.no_grad():
        expected = hand_loss(GPT(model), first.tokens, first.loss).item()
    assert whole.history[0]["loss"] == pytest.approx(expected, abs=1e-5)
    assert whole.history[0]["targets_seen"] == int(first.loss[:, 1:].sum())
    assert whole.targets_seen == int(spec.batch(range(24)).loss[:, 1:].sum())
    train(model, cfg, InProcess(spec), val, tmp_path / "cut", stop_after=3, progress=False)
    resumed = train(model, cfg, InProcess(spec), val, tmp_path / "cut", progress=False)
    assert resumed.resumed_from == 2 and resumed.targets_seen == whole.targets_seen
    assert [(r["loss"], r.get("val_loss")) for r in resumed.history] == [(r["loss"], r.get("val_loss")) for r in whole.history]
