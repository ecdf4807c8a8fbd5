"""Bad input to the probe, evaluate, report (and train) stages of every world: one line on stderr, `error: ...`
naming the file, exit code 1, and nothing written (no metrics, tables, reports or logs, no temporary `.*.tmp`
left over); and what a stage does write has ordinary permissions.

The upstream outputs (data, tokens, models) are made once per module, every world at a tiny scale in one repo
(conftest.tiny_every_world); each case spoils a copy of them. The stages run in process through
`physlm.cli.run_stage`, as `python -m stages.<stage> NAME` would (tests/test_toy_world.py does the same; the
subprocess runs are benchmarks/fault_drill.py's and tests/test_stages.py's), with their stderr and warnings
collected as the lines a user would see.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import shutil
import stat
import warnings
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import yaml
from conftest import tiny_every_world, tiny_params

from physlm.cli import run_stage
from physlm.errors import DataError
from physlm.io import atomic_path, read_csv, read_json, read_npy, write_json

pytestmark = pytest.mark.usefixtures("one_thread")

STUDIES = {"cfg": "cfg_demo", "igsm": "igsm_demo", "bio": "bio_ft"}  # world -> its study (dataset: tiny_every_world's)
DATASETS = {"cfg": "cfg_demo", "igsm": "igsm_demo", "bio": "bio_tiny"}


def run(stage: str, name: str, repo: Path) -> tuple[int, list[str]]:
    """(exit code, stderr lines) of stage@name run in `repo` in this process; warnings count as stderr lines."""
    module = importlib.import_module(f"stages.{stage}")
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        patch.chdir(repo)
        patch.setenv("PHYSLM_TRACKING", "0")
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                run_stage(stage, module.main, [name] if name else [])
            code = 0
        except SystemExit as stop:
            code = stop.code
    return code, err.getvalue().splitlines() + [f"warning: {w.message}" for w in caught]


def ok(stage: str, name: str, repo: Path) -> None:
    code, lines = run(stage, name, repo)
    assert code == 0, lines[-5:]


def snapshot(repo: Path) -> dict[str, tuple[int, int] | None]:
    """Every path under repo: a file's (size, mtime), None for a directory (made and removed again is no trace)."""
    return {str(p.relative_to(repo)): None if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns) for p in repo.rglob("*")}


def fails_cleanly(stage: str, name: str, repo: Path, *needles: str) -> None:
    """Run a stage on spoiled input: exit code 1, one stderr line `error: <stage>@<name>: ...` holding the needles,
    and the repo exactly as before."""
    before = snapshot(repo)
    code, lines = run(stage, name, repo)
    assert code == 1 and len(lines) == 1, lines[-5:]
    (line,) = lines
    assert line.startswith(f"error: {stage}{'@' + name if name else ''}: "), line
    for needle in needles:
        assert needle in line, (needle, line)
    after = snapshot(repo)
    assert after == before, f"written: {sorted(set(after) - set(before))}, changed: {sorted(k for k in before if after.get(k) != before[k])}"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every world's data, tokens and trained model (bio_ft also its model before finetuning); no probe or
    evaluate output yet."""
    repo = tmp_path_factory.mktemp("upstream")
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_every_world()))
    for world, dataset in DATASETS.items():
        ok("generate", dataset, repo)
        ok("tokenize", dataset, repo)
        ok("train", STUDIES[world], repo)
    return repo


@pytest.fixture
def repo(upstream: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(upstream, tmp_path / "repo"))


def garble(path: Path) -> None:
    path.write_bytes(b"\x00\xffnot what it should be\n" * 8)


def cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def every(pattern: str, spoil: Callable[[Path], None], under: str = "") -> Callable[[Path, str], None]:
    """Spoil every file matching `pattern` under data/<dataset>/<under> ("models": under models/)."""
    def apply(repo: Path, world: str) -> None:
        root = repo / "models" if under == "models" else repo / "data" / DATASETS[world] / under
        found = sorted(root.rglob(pattern))
        assert found, (root, pattern)
        for path in found:
            spoil(path)
    return apply


def zero_rows(path: Path) -> None:
    pl.read_parquet(path).head(0).write_parquet(path)


def as_strings(path: Path) -> None:
    """The same columns, every one holding strings."""
    frame = pl.read_parquet(path)
    frame.select(pl.lit("x").alias(c) for c in frame.columns).write_parquet(path)


def deeper(path: Path) -> None:
    config = json.loads(path.read_text())
    path.write_text(json.dumps(config | {"depth": config["depth"] + 1}))


CASES: dict[str, tuple[Callable[[Path, str], None], tuple[str, ...]]] = {  # spoil(repo, world), needles
    "corrupt parquet": (every("*.parquet", garble, "raw"), (".parquet", "not a readable Parquet file")),
    "cut-off parquet": (every("*.parquet", cut, "raw"), (".parquet", "not a readable Parquet file")),
    "parquet without rows": (every("*.parquet", zero_rows, "raw"), (".parquet", "no rows")),
    "parquet of strings": (every("*.parquet", as_strings, "raw"), (".parquet", "holds String")),
    "cut-off model.safetensors": (every("model.safetensors", cut, "models"), ("model.safetensors", "not a readable safetensors")),
    "config.json of another depth": (every("config.json", deeper, "models"), ("model.safetensors", "does not match config.json")),
    "corrupt config.json": (every("config.json", garble, "models"), ("config.json",)),
    "missing config.json": (every("config.json", Path.unlink, "models"), ("config.json", "file not found")),
    "missing model dir": (lambda repo, world: shutil.rmtree(repo / "models"), ("config.json", "file not found")),
}
READS_TOKENIZER = [("igsm", "probe"), ("igsm", "evaluate"), ("bio", "probe"), ("bio", "evaluate")]  # cfg needs none
TOKEN_CASES = {
    "corrupt tokenizer.json": (every("tokenizer.json", garble, "tokens"), ("tokenizer.json", "not a readable tokenizer.json")),
    "empty tokenizer.json": (every("tokenizer.json", lambda p: p.write_text("{}"), "tokens"), ("tokenizer.json",)),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("stage", ["probe", "evaluate"])
@pytest.mark.parametrize("world", list(STUDIES))
def test_spoiled_upstream_output_is_one_line(repo: Path, world: str, stage: str, case: str) -> None:
    spoil, needles = CASES[case]
    spoil(repo, world)
    fails_cleanly(stage, STUDIES[world], repo, *needles)


@pytest.mark.parametrize("case", list(TOKEN_CASES))
@pytest.mark.parametrize(("world", "stage"), READS_TOKENIZER)
def test_spoiled_tokenizer_is_one_line(repo: Path, world: str, stage: str, case: str) -> None:
    spoil, needles = TOKEN_CASES[case]
    spoil(repo, world)
    fails_cleanly(stage, STUDIES[world], repo, *needles)


@pytest.mark.parametrize("spoil", [garble, cut, lambda p: p.unlink()], ids=["corrupt", "cut off", "missing"])
def test_spoiled_token_shard_stops_the_encoder_control_before_any_work(repo: Path, spoil: Callable[[Path], None]) -> None:
    """The grammar probe's encoder-only control trains on the tokens: they are read before anything runs."""
    spoil(repo / "data/cfg_demo/tokens/train.npy")
    fails_cleanly("probe", "cfg_demo", repo, "data/cfg_demo/tokens/train.npy")
    assert not (repo / "checkpoints").exists()


@pytest.mark.parametrize(("name", "spoil", "needles"), [
    ("meta.json", garble, ("meta.json",)),
    ("meta.json", Path.unlink, ("meta.json", "file not found")),
    ("meta.json", lambda p: p.write_text('{"world": "cfg"}'), ("meta.json", "missing key(s) vocab_size")),
    ("train.npy", garble, ("train.npy", "not a readable .npy file")),
    ("test.npy", cut, ("test.npy", "not a readable .npy file")),
    ("train.npy", lambda p: p.write_bytes(_npy_of_floats()), ("train.npy", "not a token shard")),
], ids=["corrupt meta", "missing meta", "meta without keys", "corrupt train.npy", "cut-off test.npy", "float train.npy"])
def test_spoiled_tokens_stop_the_train_stage(repo: Path, name: str, spoil: Callable[[Path], None], needles: tuple[str, ...]) -> None:
    shutil.rmtree(repo / "models")
    spoil(repo / "data/cfg_demo/tokens" / name)
    fails_cleanly("train", "cfg_demo", repo, *needles)


def _npy_of_floats() -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.zeros((4, 9), dtype=np.float32))
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------- report


@pytest.fixture(scope="module")
def measured(upstream: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The grammar study cfg_demo trained, probed and evaluated: the report's inputs (the report runs clean on
    them)."""
    repo = Path(shutil.copytree(upstream, tmp_path_factory.mktemp("measured") / "repo"))
    params = tiny_params()
    params["studies"] = {"cfg_demo": params["studies"]["cfg_demo"]}
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("probe", "evaluate", "report"):
        ok(stage, "cfg_demo" if stage != "report" else "", repo)
    shutil.rmtree(repo / "reports")
    return repo


def cut_inside_a_row(path: Path) -> None:
    """Cut a CSV just after the first cell of its last row."""
    text = path.read_text()
    last = text.rstrip("\n").rfind("\n") + 1
    path.write_text(text[: text.index(",", last) + 1])


METRICS = {  # what the report reads of a study's metrics (physlm/report.py gather)
    "corrupt JSON": ("detail/train.json", garble, "unreadable"),
    "cut-off JSON": ("detail/probe.json", cut, "not valid JSON"),
    "empty JSON": ("detail/evaluate.json", lambda p: p.write_text(""), "not valid JSON"),
    "corrupt CSV": ("loss.csv", garble, "not a readable CSV file"),
    "cut-off CSV": ("loss.csv", cut_inside_a_row, "cut off or corrupt"),
    "ragged table": ("probe/probe.csv", lambda p: p.write_text(p.read_text() + "1,2\n"), "cut off or corrupt"),
    "JSON list": ("detail/train.json", lambda p: p.write_text("[1, 2]"), "expected a JSON object"),
    "JSON of other keys": ("detail/train.json", lambda p: p.write_text('{"params": 3}'), "missing key(s) final_loss"),
    "JSON list (world's)": ("detail/probe.json", lambda p: p.write_text("[1, 2]"), "expected a JSON object"),
    "CSV of other columns": ("loss.csv", lambda p: p.write_text("a,b\n1,2\n"), "missing column(s) step"),
    "missing detail": ("detail/evaluate.json", Path.unlink, "file not found"),
    "missing loss.csv": ("loss.csv", Path.unlink, "file not found"),
}


@pytest.mark.parametrize("case", list(METRICS))
def test_spoiled_metrics_stop_the_report(measured: Path, tmp_path: Path, case: str) -> None:
    repo = Path(shutil.copytree(measured, tmp_path / "repo"))
    name, spoil, needle = METRICS[case]
    spoil(repo / "metrics/cfg_demo" / name)
    shutil.rmtree(repo / "reports", ignore_errors=True)
    fails_cleanly("report", "", repo, f"metrics/cfg_demo/{name}", needle)
    assert not (repo / "reports").exists()


def test_checked_readers_name_the_file_and_what_is_wrong(tmp_path: Path) -> None:
    """The readers' checks the stages above do not reach: a JSON object's keys, a CSV's columns, a missing .npy."""
    (tmp_path / "meta.json").write_text('{"context": 8}')
    (tmp_path / "list.json").write_text("[1]")
    (tmp_path / "loss.csv").write_text("step,loss\n1,2.5\n\n2,2.0\n")
    assert read_json(tmp_path / "meta.json", ["context"]) == {"context": 8}
    with pytest.raises(DataError, match=r"meta\.json: missing key\(s\) vocab_size"):
        read_json(tmp_path / "meta.json", ["context", "vocab_size"])
    with pytest.raises(DataError, match=r"list\.json: expected a JSON object, got list"):
        read_json(tmp_path / "list.json", ["context"])
    assert read_csv(tmp_path / "loss.csv", ["step"]) == [{"step": "1", "loss": "2.5"}, {"step": "2", "loss": "2.0"}]
    with pytest.raises(DataError, match=r"loss\.csv: missing column\(s\) val_loss; has step, loss"):
        read_csv(tmp_path / "loss.csv", ["step", "val_loss"])
    with pytest.raises(DataError, match=r"train\.npy: file not found"):
        read_npy(tmp_path / "train.npy")


# ------------------------------------------------------------------------------------------- permissions


@contextlib.contextmanager
def umask(mask: int):
    before = os.umask(mask)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_outputs_get_ordinary_permissions(tmp_path: Path, mask: int) -> None:
    """Directories 0o777 and files 0o666 less the umask, as any program's (tempfile.mkdtemp would give 0o700)."""
    with umask(mask):
        with atomic_path(tmp_path / "out" / "tables", is_dir=True) as tmp:
            (tmp / "a.csv").write_text("x\n")
        write_json(tmp_path / "out" / "summary.json", {"a": 1})
    assert mode(tmp_path / "out") == 0o777 & ~mask
    assert mode(tmp_path / "out" / "tables") == 0o777 & ~mask
    assert mode(tmp_path / "out" / "tables" / "a.csv") == 0o666 & ~mask
    assert mode(tmp_path / "out" / "summary.json") == 0o666 & ~mask


def test_stage_outputs_get_ordinary_permissions(upstream: Path) -> None:
    mask = os.umask(0)  # (reading the umask means setting it)
    os.umask(mask)
    for out in ("models/cfg_demo", "models/bio_ft/pretrained", "data/cfg_demo/raw", "data/cfg_demo/tokens"):
        assert mode(upstream / out) == 0o777 & ~mask, out
    assert mode(upstream / "models/cfg_demo/model.safetensors") == 0o666 & ~mask
