"""Stage scripts: one clear line and no output on bad input; byte-identical data; an interrupted train resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def run(stage: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PHYSLM_TRACKING": "0", **env}
    return subprocess.run([sys.executable, "-m", f"stages.{stage}", "cfg_demo"], cwd=cwd, capture_output=True, text=True, env=env)


# One thread for the runs compared bit for bit: with several, BLAS may split a product differently when the machine
# is busy (MKL adjusts its threads to the load), which changes the last bits of a weight.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def setup(tmp_path: Path, grammar: str = "cfg3b") -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["datasets"]["cfg_demo"]["generate"].update(grammar=grammar, train_sentences=50, test_sentences=10)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def one_line(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_malformed_grammar_file(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_text("# 2 rule levels [1, 2, 2]\n5 => 3 4\n")
    one_line(run("generate", setup(tmp_path, grammar=str(tmp_path / "bad.txt"))), "bad.txt")
    assert not (tmp_path / "data").exists()


def test_unknown_grammar_name(tmp_path: Path) -> None:
    one_line(run("generate", setup(tmp_path, grammar="cfg3q")), "unknown grammar 'cfg3q'")
    assert not (tmp_path / "data").exists()


def test_corrupt_parquet_leaves_no_tokens(tmp_path: Path) -> None:
    repo = setup(tmp_path)
    assert run("generate", repo).returncode == 0
    raw = repo / "data/cfg_demo/raw"
    (raw / "test.parquet").write_bytes(b"PAR1 this is not parquet")
    one_line(run("tokenize", repo), "test.parquet", "not a readable Parquet file")
    assert not (repo / "data/cfg_demo/tokens").exists()
    assert not list((repo / "data/cfg_demo").glob(".tokens*"))  # no temporary left over


def test_missing_upstream_output(tmp_path: Path) -> None:
    repo = setup(tmp_path)
    one_line(run("train", repo), "meta.json", "run the stage that produces it")
    assert not (repo / "models").exists()


def test_generate_is_byte_identical(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = setup(tmp_path / "a"), setup(tmp_path / "b")
    for repo in (first, second):
        assert run("generate", repo).returncode == 0
    for name in ("train.parquet", "test.parquet", "grammar.txt"):
        assert (first / "data/cfg_demo/raw" / name).read_bytes() == (second / "data/cfg_demo/raw" / name).read_bytes()


PARTIAL_TRAIN = """
from physlm.config import load_stage
from physlm.io import Paths
from physlm.train import load_windows, train
from stages.train import configs

paths = Paths("cfg_demo")
model_cfg, train_cfg = configs(paths, load_stage("train", "cfg_demo"))
train(model_cfg, train_cfg, load_windows(paths.tokens, "train"), load_windows(paths.tokens, "test"), paths.checkpoints,
      stop_after=train_cfg.checkpoint_every + 1, progress=False)
print(train_cfg.checkpoint_every)
"""


def test_interrupted_train_stage_resumes_to_the_same_weights(tmp_path: Path) -> None:
    """Kill-and-rerun of the train stage, simulated by a partial run that leaves its checkpoint behind. Every run is
    a fresh single-threaded process, as a rerun is (an in-process partial run inherited the test process's state,
    and several threads let BLAS follow the machine's load: the comparison failed once in CI)."""
    from conftest import tiny_params

    repos = []
    for name in ("straight", "resumed"):
        repo = tmp_path / name
        repo.mkdir()
        (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
        for stage in ("generate", "tokenize"):
            assert run(stage, repo).returncode == 0
        repos.append(repo)
    straight, resumed = repos
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PHYSLM_TRACKING": "0", **ONE_THREAD}
    partial = subprocess.run([sys.executable, "-c", PARTIAL_TRAIN], cwd=resumed, capture_output=True, text=True, env=env)
    assert partial.returncode == 0, partial.stderr[-2000:]
    checkpoint_every = int(partial.stdout.split()[-1])
    assert (resumed / "checkpoints/cfg_demo/checkpoint.pt").is_file()
    for repo in (straight, resumed):
        assert run("train", repo, **ONE_THREAD).returncode == 0
    assert json.loads((resumed / "logs/cfg_demo/train.json").read_text())["resumed_from"] == checkpoint_every
    assert json.loads((straight / "logs/cfg_demo/train.json").read_text())["resumed_from"] is None
    weights = [(repo / "models/cfg_demo/model.safetensors").read_bytes() for repo in (straight, resumed)]
    assert weights[0] == weights[1]
    assert not (resumed / "checkpoints/cfg_demo").exists()


def test_implicit_and_perturbed_dataset(tmp_path: Path) -> None:
    """generate + tokenize of an implicit grammar with perturbed training sentences: the columns, the bags,
    the vocabulary, a clean test split, and every clean token string emitted from its terminals."""
    import polars as pl

    from physlm.worlds.cfg.implicit import load_bags

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["datasets"]["cfg_demo"]["generate"].update(
        train_sentences=400, test_sentences=40, implicit={"bag_size": 3, "overlap": 1, "seed": 2},
        perturb={"fraction": 0.5, "rate": 0.2, "kind": "replace"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert run("generate", tmp_path).returncode == 0
    assert run("tokenize", tmp_path).returncode == 0
    raw = tmp_path / "data/cfg_demo/raw"
    bags = load_bags(raw / "bags.json")
    train, test = pl.read_parquet(raw / "train.parquet"), pl.read_parquet(raw / "test.parquet")
    assert {"tokens", "terminals", "ancestors", "boundaries", "perturbed"} <= set(train.columns)
    assert 0.35 < train["perturbed"].mean() < 0.65 and not test["perturbed"].any()
    for tokens, terminals in zip(test["tokens"].to_list(), test["terminals"].to_list()):
        assert all(tok in bags.bag(t) for tok, t in zip(tokens, terminals))
    meta = json.loads((tmp_path / "data/cfg_demo/tokens/meta.json").read_text())
    assert meta["vocab_size"] == bags.vocab_size + 2 == 5 * 2 + 2  # 5 terminals, bags of 3 sharing 1: M = 10


def test_bad_implicit_params_write_nothing(tmp_path: Path) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["datasets"]["cfg_demo"]["generate"]["implicit"] = {"bag_size": 2, "overlap": 2, "seed": 0}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    one_line(run("generate", tmp_path), "overlap")
    assert not (tmp_path / "data").exists()
