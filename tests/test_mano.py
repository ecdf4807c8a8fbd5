"""The Mano world (physlm/worlds/mano/): the generator against an independent evaluator and against SPEC 7.3 /
11.1.3's numbers, its files, tokens and scoring, and a tiny study through every stage.

- values: a stack machine reading each prefix expression from the right (written here, not the generator's
  recursion), for every split and the division option;
- layout: 2ℓ + 1 symbols, 2ℓ + 5 tokens up to the answer (the released layout's length), 2ℓ + 6 packed with <eos>;
- distributions: training ℓ uniform on 1..L, test ℓ = L, the lengths set cycling; operations split uniformly
  between the two children; operators and leaves uniform; augmentation twins about half the time, the same
  expression and value with and without it;
- determinism and worker-count independence of the Parquet files; bad files are one-line errors;
- no loss mask (the loss is on every token);
- scoring: a scripted model (`RuleModel`, a stand-in GPT whose next token is a rule of the prefix) answers some
  expressions right and some wrong; greedy and teacher-forced accuracies, overall and by ℓ, are known exactly;
- the whole study in process: generate, tokenize, train (a few steps), probe, evaluate, report.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
import torch
import yaml
from torch import Tensor, nn

import generations

import physlm.worlds.mano.generate as mano_generate
from physlm.errors import DataError
from physlm.tokenize import Vocab, pack_windows
from physlm.worlds.mano.evaluate import answer, first_per_length, summarize
from physlm.worlds.mano.expression import MOD, example
from physlm.worlds.mano.params import ManoGenerateParams
from physlm.worlds.mano.tokenize import IDS, VALUE_IDS, VOCAB, Row, encode, read_modulus, read_rows, tokenize

ROOT = Path(__file__).resolve().parents[1]


def stack_value(expression: str, modulus: int = MOD) -> int:
    """The value mod `modulus` (23 by default) of a prefix expression, by a stack machine that reads it from the
    right: a number is pushed; an operator pops its left operand (the top) and its right one and pushes the result."""
    stack: list[int] = []
    for symbol in reversed(expression.split()):
        if symbol.isdigit():
            stack.append(int(symbol))
            continue
        left, right = stack.pop(), stack.pop()
        if symbol == "/":
            assert right != 0, "a division by zero was kept"
            result = left * pow(right, modulus - 2, modulus)  # Fermat: right^(p-2) is its inverse mod a prime p
        else:
            result = {"+": left + right, "-": left - right, "*": left * right}[symbol]
        stack.append(result % modulus)
    assert len(stack) == 1, f"{expression!r} is not one prefix expression"
    return stack[0]


def left_ops(expression: str) -> int:
    """Operations in the root's left child: read the prefix expression until one complete subtree follows the root."""
    need, ops = 1, 0
    for symbol in expression.split()[1:]:
        need += 1 if not symbol.isdigit() else -1
        ops += not symbol.isdigit()
        if need == 0:
            return ops
    raise AssertionError(f"{expression!r}: the left child never ends")


def params(**overrides) -> ManoGenerateParams:
    base = {"max_ops": 5, "train_examples": 400, "test_examples": 60, "length_examples": 10, "workers": 1}
    return ManoGenerateParams(**(base | overrides))


@pytest.mark.parametrize(("operators", "modulus"), [("+-*", 23), ("+-*/", 23), ("+-*", 6), ("+-*/", 7)])
def test_values_match_an_independent_evaluator(operators: str, modulus: int) -> None:
    p = params(max_ops=9, operators=operators, modulus=modulus)
    leaves: Counter[str] = Counter()
    for split in ("train", "test", "lengths"):
        frame = mano_generate.generate_split(p, 3, split, 300)
        for ops, expression, value, text in frame.select("ops", "expression", "value", "text").iter_rows():
            assert stack_value(expression, modulus) == value, (expression, value)
            symbols = expression.split()
            assert len(symbols) == 2 * ops + 1 and sum(not s.isdigit() for s in symbols) == ops
            leaves.update(s for s in symbols if s.isdigit())
            assert set(symbols) <= set(operators) | {str(v) for v in range(modulus)}
            assert text == f"<len_{ops}> {expression} <ans> {value}"
    assert set(leaves) == {str(v) for v in range(modulus)}  # every value occurs as a leaf, none beyond the modulus


def test_modulus_23_is_the_paper_data_and_bad_moduli_are_refused() -> None:
    """modulus 23 (the default) draws exactly what the generator drew before the option; '/' needs a prime."""
    assert example(5, "train", 17, max_ops=7) == example(5, "train", 17, max_ops=7, modulus=23)
    for bad in ({"modulus": 1}, {"modulus": 24}, {"modulus": 8, "operators": "+/"}):
        with pytest.raises(ValueError):
            params(**bad)
    with pytest.raises(ValueError, match="prime"):
        example(0, "test", 0, max_ops=2, operators="/", modulus=9)


def test_division_regenerates_on_zero() -> None:
    """With / a zero divisor anywhere means a new expression: every kept one evaluates (stack_value asserts it),
    and divisions do occur."""
    found = [example(1, "test", i, max_ops=6, operators="/") for i in range(200)]
    assert all(stack_value(" ".join(e.expression)) == e.value for e in found)


def test_layout_lengths() -> None:
    """2ℓ + 5 tokens up to the answer, as the released layout `[bos] [len] expr [ans] [value]` (25 at ℓ = 10, 37 at
    ℓ = 16), and 2ℓ + 6 once packing adds <eos>."""
    for L, expected in ((10, 25), (16, 37), (1, 7)):
        row = read_rows_of([example(0, "test", i, max_ops=L) for i in range(5)])
        assert {len(r.prompt) + 1 for r in row} == {expected} == {2 * L + 5}
        assert {len(r.sequence) for r in row} == {2 * L + 6}
        flat, offsets = encode(row)
        windows = pack_windows(flat, offsets, context=2 * L + 5, bos_id=0, eos_id=1, pack="sentences")
        assert windows.shape == (5, 2 * L + 6) and (windows[:, 0] == 0).all() and (windows[:, -1] == 1).all()


def read_rows_of(examples) -> list[Row]:
    return [Row(e.ops, tuple(IDS[s] for s in e.text.split()), e.value) for e in examples]


def test_length_distributions() -> None:
    p = params(max_ops=6, eval_lengths=[2, 4, 6])
    train = mano_generate.generate_split(p, 0, "train", 6000)["ops"].to_list()
    counts = Counter(train)
    assert set(counts) == set(range(1, 7)) and all(abs(c / 6000 - 1 / 6) < 0.025 for c in counts.values()), counts
    assert set(mano_generate.generate_split(p, 0, "test", 50)["ops"]) == {6}
    assert mano_generate.generate_split(p, 0, "lengths", 9)["ops"].to_list() == [2, 4, 6] * 3


def test_operations_split_uniformly_and_symbols_are_uniform() -> None:
    """The root's left child takes U{0..ℓ-1} of the other operations; operators and leaves are uniform."""
    found = [example(2, "test", i, max_ops=5) for i in range(5000)]
    left = Counter(left_ops(" ".join(e.expression)) for e in found)
    assert set(left) == set(range(5)) and all(abs(c / 5000 - 0.2) < 0.025 for c in left.values()), left
    symbols = Counter(s for e in found for s in e.expression)
    ops = [symbols[o] for o in "+-*"]
    assert sum(ops) == 5 * 5000 and max(ops) / min(ops) < 1.1
    leaves = [symbols[str(v)] for v in range(MOD)]
    assert sum(leaves) == 6 * 5000 and max(leaves) / min(leaves) < 1.3


def test_augmentation() -> None:
    """The same expression and value with and without augmentation; every operator, length token and answer
    marker has its twin about half the time."""
    plain = [example(4, "train", i, max_ops=8) for i in range(800)]
    aug = [example(4, "train", i, max_ops=8, augment=True) for i in range(800)]
    assert [(e.expression, e.value) for e in plain] == [(e.expression, e.value) for e in aug]
    assert all("'" not in e.text for e in plain)
    words = [w for e in aug for w in e.text.split()]
    for kind in ("<len_", "<ans", "+", "-", "*"):
        mine = [w for w in words if w.startswith(kind)]
        assert 0.4 < sum(w.endswith("'") or w.endswith("'>") for w in mine) / len(mine) < 0.6, kind
    assert {VOCAB.symbols[i] for r in read_rows_of(aug) for i in r.ids} <= set(VOCAB.symbols)


def test_deterministic_and_worker_independent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mano_generate, "CHUNK", 70)
    one, two = tmp_path / "one", tmp_path / "two"
    for out, workers in ((one, 1), (two, 2)):
        out.mkdir()
        counts = mano_generate.generate(params(workers=workers, augment=True), 11, out)
    assert counts == {"train": 400, "test": 60, "lengths": 50}
    for split in counts:
        assert (one / f"{split}.parquet").read_bytes() == (two / f"{split}.parquet").read_bytes(), split
    frame = pl.read_parquet(one / "train.parquet")
    assert frame["index"].to_list() == list(range(400))
    assert frame.row(123, named=True)["text"] == example(11, "train", 123, max_ops=5, augment=True).text
    assert dict(frame.schema) == mano_generate.COLUMNS


def test_tokenize_has_no_loss_mask_and_checks_its_files(tmp_path: Path) -> None:
    mano_generate.generate(params(), 0, tmp_path)
    tokenized = tokenize(tmp_path, SimpleNamespace(context=32, pack="sentences"))
    out = tokenized.splits["train"]()
    assert len(out) == 2, "Mano trains on every token: no loss mask"
    flat, offsets = out
    assert len(offsets) == 401 and offsets[-1] == len(flat) and flat.max() < VOCAB.size
    with pytest.raises(DataError, match="exceed a window"):
        tokenize(tmp_path, SimpleNamespace(context=12, pack="sentences"))
    assert read_modulus(tmp_path) == 23
    (tmp_path / "mano.json").write_text('{"modulus": 40}')
    with pytest.raises(DataError, match="not an integer in 2..23"):
        read_modulus(tmp_path)
    (tmp_path / "mano.json").unlink()
    with pytest.raises(DataError, match="file not found"):
        read_modulus(tmp_path)
    frame = pl.read_parquet(tmp_path / "test.parquet")
    frame.with_columns(pl.col("value").cast(pl.UInt8) + 1).with_columns(pl.col("value") % MOD).write_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="is not `<len_5> expression <ans>"):
        read_rows(tmp_path / "bad.parquet")
    frame.with_columns(pl.col("text").str.replace("<ans>", "<answer>")).write_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="outside the Mano vocabulary"):
        read_rows(tmp_path / "bad.parquet")


# ------------------------------------------------------------------------------------- scripted model


class Memory:
    """RuleModel's cache: each row's tokens so far."""

    def __init__(self) -> None:
        self.rows: list[list[int]] = []
        self.length = 0


class RuleModel(nn.Module):
    """A stand-in GPT whose prediction after every prefix is `rule(prefix)` (a token id; its logit leads by 100).
    It takes what the engine's GPT takes: whole right-padded sequences (teacher forcing), left-padded prompts
    (`pad`) and a cache fed one token per step (generation)."""

    def __init__(self, vocab_size: int, context: int, rule: Callable[[tuple[int, ...]], int]) -> None:
        super().__init__()
        self.cfg = SimpleNamespace(context=context)
        self.anchor = nn.Parameter(torch.zeros(1))  # the samplers read the device off the parameters
        self.vocab_size, self.rule = vocab_size, rule

    def new_cache(self, batch: int, positions: int | None = None) -> Memory:
        return Memory()

    def forward(self, idx: Tensor, targets: Tensor | None = None, *, cache: Memory | None = None,
                pad: Tensor | None = None) -> tuple[Tensor, None]:
        rows = idx.tolist()
        if cache is None or not cache.rows:
            starts = [0] * len(rows) if pad is None else pad.tolist()
            history = [[] for _ in rows]
            new = [row[s:] for row, s in zip(rows, starts)]
        else:
            history, new, starts = cache.rows, rows, [0] * len(rows)
        logits = torch.zeros(len(rows), idx.size(1), self.vocab_size)
        for r, tokens in enumerate(new):
            seen = list(history[r])
            for t, token in enumerate(tokens):
                seen.append(token)
                logits[r, starts[r] + t, self.rule(tuple(seen))] = 100.0
            history[r] = seen
        if cache is not None:
            cache.rows = history
        return logits, None


def scripted_rows() -> list[Row]:
    return read_rows_of([example(9, "lengths", i, max_ops=4, lengths=[1, 2, 3, 4]) for i in range(40)])


def test_scoring_against_known_answers() -> None:
    """The scripted model answers right exactly on the rows whose index is not 2 mod 5 (and, at ℓ = 3, on none);
    every accuracy follows by counting."""
    rows = scripted_rows()
    right = {tuple(r.prompt): (i % 5 != 2 and r.ops != 3) for i, r in enumerate(rows)}
    truth = {tuple(r.prompt): r.value for r in rows}

    def rule(prefix: tuple[int, ...]) -> int:
        if prefix in truth:  # after <ans>: the value, or the next value mod 23
            return VALUE_IDS[(truth[prefix] + (0 if right[prefix] else 1)) % MOD]
        return Vocab.eos_id

    model = RuleModel(VOCAB.size, 64, rule)
    answers = answer(model, rows, batch_size=7, device=torch.device("cpu"))
    assert [a.greedy for a in answers] == [a.forced for a in answers] == list(right.values())
    found = summarize(answers)
    expected_by_ops = {ops: np.mean([right[tuple(r.prompt)] for r in rows if r.ops == ops]) for ops in (1, 2, 3, 4)}
    assert found["n"] == 40 and found["greedy"] == found["teacher_forced"] == pytest.approx(np.mean(list(right.values())))
    assert expected_by_ops[3] == 0.0 and expected_by_ops[1] == 0.8
    assert {int(k): v["greedy"] for k, v in found["by_ops"].items()} == pytest.approx(expected_by_ops)
    assert {int(k): v["n"] for k, v in found["by_ops"].items()} == {1: 10, 2: 10, 3: 10, 4: 10}
    assert len(first_per_length(rows, 3)) == 12 and [r.ops for r in first_per_length(rows, 1)] == [1, 2, 3, 4]


def test_a_non_value_answer_is_wrong() -> None:
    rows = scripted_rows()[:6]
    model = RuleModel(VOCAB.size, 64, lambda prefix: IDS["<ans>"])
    found = summarize(answer(model, rows, batch_size=4, device=torch.device("cpu")))
    assert found["greedy"] == found["teacher_forced"] == 0.0


# ------------------------------------------------------------------------------------- the whole study

TINY = {
    "model": {"depth": 1, "width": 32, "heads": 2},
    "train": {"steps": 30, "batch_size": 8, "micro_batch_size": 8, "lr": 1.0e-2, "warmup_steps": 3, "eval_every": 15,
              "eval_batches": 1, "checkpoint_every": 15, "log_every": 5},
}
PROBE = {"examples": 40, "train_fraction": 0.5, "steps": 20, "lr": 5.0e-2, "batch_size": 16, "control": True}
EVALUATE = {"examples": 30, "length_examples": 5, "batch_size": 16, "control": True}


def tiny_mano_params() -> dict:
    """The repo's shared sections with the world's probe/evaluate defaults, one tiny Mano dataset and study."""
    from physlm.config import merge

    repo = yaml.safe_load((ROOT / "params.yaml").read_text())
    shared = merge({k: repo[k] for k in ("seed", "nproc", "model", "train", "probe", "evaluate")}, TINY)
    shared["probe"]["mano"], shared["evaluate"]["mano"] = dict(PROBE), dict(EVALUATE)
    generate = {"max_ops": 3, "modulus": 7, "train_examples": 600, "test_examples": 60, "length_examples": 10, "workers": 1}
    return shared | {"datasets": {"mano_tiny": {"world": "mano", "generate": generate, "tokenize": {"context": 64, "pack": "sentences"}}},
                     "studies": {"mano_tiny": {"world": "mano", "data": "mano_tiny", "model": {}, "train": {}, "probe": {},
                                               "evaluate": {}}}}


def test_a_tiny_study_runs_every_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread) -> None:
    import stages.evaluate
    import stages.generate
    import stages.probe
    import stages.report
    import stages.tokenize
    import stages.train
    from physlm.cli import run_stage

    monkeypatch.setenv("PHYSLM_TRACKING", "0")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_mano_params(), sort_keys=False))
    for stage, module, name in (("generate", stages.generate, "mano_tiny"), ("tokenize", stages.tokenize, "mano_tiny"),
                                ("train", stages.train, "mano_tiny"), ("probe", stages.probe, "mano_tiny"),
                                ("evaluate", stages.evaluate, "mano_tiny"), ("report", stages.report, None)):
        run_stage(stage, module.main, [name] if name else [])
    evaluated = json.loads((tmp_path / "metrics/mano_tiny/detail/evaluate.json").read_text())
    assert evaluated["max_ops"] == 3 and evaluated["test"]["n"] == 30 and evaluated["lengths"]["n"] == 15
    assert evaluated["modulus"] == 7 and evaluated["chance"] == 1 / 7  # read from raw/mano.json
    raw = tmp_path / "data/mano_tiny/raw"  # the share of evaluated examples that are training examples, counted here
    train = set(pl.read_parquet(raw / "train.parquet")["text"].to_list())
    test = pl.read_parquet(raw / "test.parquet")["text"].head(30).to_list()
    lengths = pl.read_parquet(raw / "lengths.parquet").group_by("ops", maintain_order=True).head(5)["text"].to_list()
    assert evaluated["in_train"] == pytest.approx({name: sum(t in train for t in texts) / len(texts) for name, texts in (("test", test), ("lengths", lengths))})
    assert 0 < evaluated["in_train"]["lengths"]  # one operation mod 7: 3 * 49 expressions, most of them in 600 training examples
    assert json.loads((tmp_path / "metrics/mano_tiny/detail/probe.json").read_text())["chance"] == 1 / 7
    assert "chance 1/7" in (tmp_path / "reports/summary.md").read_text()
    for name in ("test", "lengths", "control"):
        assert evaluated[name]["greedy"] == evaluated[name]["teacher_forced"], name  # one token: the same question
    assert set(json.loads((tmp_path / "metrics/mano_tiny/evaluate.json").read_text())) == \
        {f"{s}_{k}" for s in ("test", "lengths", "control") for k in ("greedy", "teacher_forced")}
    probe = pl.read_csv(tmp_path / "metrics/mano_tiny/probe/probe.csv")
    assert probe["layer"].to_list() == [0, 1, 0, 1] and probe["model"].to_list() == ["trained"] * 2 + ["control"] * 2
    summary = (tmp_path / "reports/summary.md").read_text()
    assert "## Mano" in summary and "| mano_tiny |" in summary and (tmp_path / "reports/mano_accuracy.png").is_file()
    # every answer saved: the expected value is the example's in its Parquet file, and re-judged, the verdicts and
    # accuracies come back
    frame = generations.read(tmp_path, "mano_tiny", {"ell": pl.Int64, "expected": pl.String, "teacher_forced": pl.Boolean})
    for name, file in (("test", "test"), ("lengths", "lengths"), ("control", "test")):
        data = pl.read_parquet(tmp_path / f"data/mano_tiny/raw/{file}.parquet")
        for row in frame.filter(pl.col("set") == name).iter_rows(named=True):
            assert row["expected"] == str(data["value"][row["index"]]) and row["ell"] == data["ops"][row["index"]]
            assert row["prompt"] == data["text"][row["index"]].rsplit(" ", 1)[0]  # all but the value
    generations.rejudge(frame, lambda row: row["output"] == row["expected"])
    generations.matches_metrics(frame, evaluated, ("set",), "greedy", "n", {"test", "lengths", "control"})
    assert (frame["verdict"] == frame["teacher_forced"]).all() and frame.height == 30 + 15 + 30


def test_the_oracle_can_fail() -> None:
    """A wrong value or a malformed expression is caught by the oracle."""
    e = example(0, "test", 0, max_ops=4)
    assert stack_value(" ".join(e.expression)) == e.value
    assert stack_value(" ".join(e.expression)) != (e.value + 1) % MOD
    with pytest.raises((AssertionError, IndexError)):
        stack_value(" ".join(e.expression[1:]))
    with pytest.raises(AssertionError):
        stack_value(" ".join((*e.expression, "3")))


def test_rule_model_prefixes_are_seen_whole() -> None:
    """The scripted model sees each row's own tokens: padded and cached calls give the rule the same prefixes."""
    seen: list[Sequence[int]] = []
    model = RuleModel(8, 16, lambda prefix: seen.append(prefix) or 1)
    from physlm.playground_eval import greedy_answers

    greedy_answers(model, [[0, 3], [0, 4, 5]], 2, None, 2, torch.device("cpu"))
    assert (0, 3) in seen and (0, 4, 5) in seen and all(p[0] == 0 for p in seen)


# ------------------------------------------------------------------------------------------------ preset


def test_mano_paper_preset(tmp_path: Path) -> None:
    """The grid: a dataset per L, a study per L x size x architecture with the paper's recipe; params.yaml is
    rewritten and validates once the engine has the Llama / NoPE / partial-RoPE options (before, the preset stops
    with one line naming the key and leaves the file as it was)."""
    from physlm.params import ModelParams
    from physlm.presets import main
    from physlm.worlds.mano.presets import ARCHS, mano_paper

    params = {"probe": {}, "evaluate": {}, "datasets": {"keep": {"world": "cfg"}, "old": {"world": "mano"}},
              "studies": {"old": {"world": "mano", "data": "old"}}}
    names = mano_paper(params, lengths=[10, 16], sizes=["12L768D", "8L512D"], archs=["rope", "nope_canon"])
    assert len(names) == 8 and set(params["datasets"]) == {"keep", "p41_mano_L10", "p41_mano_L16"}
    study = params["studies"]["p41_mano_L16_8L512D_nope_canon"]
    assert study["model"] | {} == {"depth": 8, "width": 512, "heads": 8, "mlp_ratio": 4, "dropout": 0.0, **ARCHS["nope_canon"]}
    assert (study["train"]["steps"], study["train"]["batch_size"], study["train"]["weight_decay"]) == (110_000, 64, 0.1)
    assert params["studies"]["p41_mano_L10_12L768D_rope"]["train"]["steps"] == 80_000
    assert params["datasets"]["p41_mano_L10"]["tokenize"]["context"] == 1024 and "mano" in params["probe"]
    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    before = path.read_bytes()
    if "block" in ModelParams.model_fields:
        main(["mano-paper", "--params", str(path), "--lengths", "10"])
        assert {n for n, s in yaml.safe_load(path.read_text())["studies"].items() if s["world"] == "mano"} == \
            {f"p41_mano_L10_12L768D_{arch}" for arch in ARCHS}
    else:
        with pytest.raises(SystemExit, match="block"):
            main(["mano-paper", "--params", str(path), "--lengths", "10"])
        assert path.read_bytes() == before
    with pytest.raises(SystemExit, match="unknown or empty choice 99"):
        main(["mano-paper", "--params", str(path), "--lengths", "99"])


def test_the_showcase_runs_the_presets_demo() -> None:
    """params.yaml's Mano miniature is mano/presets.py's DEMO_* (which SUITE adds seeds and the NoPE pair to)."""
    from physlm.worlds.mano.presets import DEMO_DATASET, DEMO_STUDIES, SUITE

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert params["datasets"]["mano_demo"] == DEMO_DATASET
    assert {k: v for k, v in params["studies"].items() if v["world"] == "mano"} == DEMO_STUDIES
    studies = SUITE["studies"]
    assert all(studies[f"{name}_s{seed}"]["train"]["seed"] == seed for name in DEMO_STUDIES for seed in (1, 2))
    assert studies["mano_nope"]["model"]["pos"] == "nope" and studies["mano_nope_canon_s2"]["model"]["canon"] == "ABCD"
    assert not set(studies) & set(params["studies"]), "the suite adds studies; it never replaces the showcase's"


def _bucket(expression: str) -> float:
    """The held-out hash, recomputed here from its definition (sha256 of the prefixed expression, first 8 bytes)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(f"mano-held-out:{expression}".encode()).digest()[:8], "big") / 2**64


def test_held_out_keeps_l_operation_test_expressions_out_of_training(tmp_path: Path) -> None:
    """generate.held_out: every test expression (L operations) is in the held-out hash range and none is a
    training expression, though with mod 5 and L = 2 (2,250 expressions) the plain generator repeats many;
    training keeps its ℓ distribution (the same ℓ at every index) and every shorter expression; held_out 0 is
    the old data."""
    share, knobs = 0.2, {"max_ops": 2, "modulus": 5, "train_examples": 3000, "test_examples": 200, "length_examples": 20,
                          "workers": 1}
    plain, split = tmp_path / "plain", tmp_path / "split"
    for out, held in ((plain, 0.0), (split, share)):
        out.mkdir()
        mano_generate.generate(ManoGenerateParams(**knobs, held_out=held), 3, out)
    before, train = pl.read_parquet(plain / "train.parquet"), pl.read_parquet(split / "train.parquet")
    test, lengths = pl.read_parquet(split / "test.parquet"), pl.read_parquet(split / "lengths.parquet")
    seen = set(train["expression"])
    repeats = pl.read_parquet(plain / "test.parquet")["expression"].is_in(before["expression"].implode()).mean()
    assert repeats > 0.3  # the problem: the plain generator's test repeats training expressions
    assert all(_bucket(e) < share for e in test["expression"]) and not set(test["expression"]) & seen
    long_train = train.filter(pl.col("ops") == 2)["expression"]
    assert all(_bucket(e) >= share for e in long_train) and len(long_train) > 1000
    assert train["ops"].to_list() == before["ops"].to_list()
    kept = [b == a for a, b, held in zip(before["text"], train["text"], before["expression"].map_elements(_bucket, return_dtype=pl.Float64))
            if held >= share]
    assert all(kept)  # a training example outside the held-out range is the plain generator's own
    short = train.filter(pl.col("ops") == 1)
    assert short.equals(before.filter(pl.col("ops") == 1))
    at_l = lengths.filter(pl.col("ops") == 2)["expression"]
    assert len(at_l) and all(_bucket(e) < share for e in at_l)
    assert json.loads((split / "mano.json").read_text())["held_out"] == share
    assert "held_out" not in json.loads((plain / "mano.json").read_text())
    assert example(3, "test", 5, max_ops=2, modulus=5) == example(3, "test", 5, max_ops=2, modulus=5, held_out=0.0)


def test_held_out_refuses_a_split_nothing_can_satisfy() -> None:
    with pytest.raises(ValueError, match="no held-out expression of 1 operations"):
        example(0, "test", 0, max_ops=1, operators="+", modulus=2, held_out=1e-9)
    with pytest.raises(ValueError):
        ManoGenerateParams(max_ops=2, train_examples=10, test_examples=10, length_examples=1, held_out=1.0)
