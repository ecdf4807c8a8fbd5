"""Adding a world is adding one package: tests/toy_world ("copy the prompt", a tests-only world) goes through
every stage with nothing else changed.

- In process: the package is registered (`physlm.worlds.register`) and each stage's `main` runs through
  `physlm.cli.run_stage`, as `python -m stages.<stage>` would, in a scratch directory with a toy-only
  params.yaml; and the engine modules the package imports are all deps dvc.yaml already declares.
- Through DVC (slow): the package copied to physlm/worlds/toy of a throwaway repo is found by discovery (no
  registry edit) and `dvc repro` runs every stage, a second repro runs none, and git sees no change to the
  code, only the outputs dvc.yaml declares as uncached (its metrics) and dvc.lock.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from imports import closure, files, modules, third_party

import stages.evaluate
import stages.generate
import stages.probe
import stages.report
import stages.tokenize
import stages.train
from physlm import worlds
from physlm.cli import run_stage
from physlm.config import merge

ROOT = Path(__file__).resolve().parents[1]
TOY = Path(__file__).resolve().parent / "toy_world"
DATASET, STUDY = "toy", "toy_copy"
STAGES = {"generate": stages.generate, "tokenize": stages.tokenize, "train": stages.train, "probe": stages.probe,
          "evaluate": stages.evaluate, "report": stages.report}
STEP = {"generate": "generate", "tokenize": "tokenize", "train": None, "probe": "probe", "evaluate": "evaluate",
        "report": "report"}  # the toy module each stage runs (train: the package only; toy has no train step)

TINY = {
    "model": {"depth": 1, "width": 32, "heads": 2},
    "train": {"steps": 40, "batch_size": 8, "micro_batch_size": 8, "lr": 1.0e-2, "warmup_steps": 4, "eval_every": 20,
              "eval_batches": 1, "checkpoint_every": 20, "log_every": 10},
    "probe": {"toy": {"examples": 40, "train_fraction": 0.5, "steps": 30, "lr": 5.0e-2, "control": True}},
    "evaluate": {"toy": {"examples": 30, "batch_size": 32, "control": True}},
}


def toy_params() -> dict:
    """The repo's shared sections shrunk, probe.toy / evaluate.toy defaults, one toy dataset and one study
    (which overrides a key of probe.toy: the study's section is deep-merged over the world's defaults)."""
    repo = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = merge({k: repo[k] for k in ("seed", "nproc", "model", "train", "probe", "evaluate")}, TINY)
    generate = {"train_examples": 400, "test_examples": 60, "length": 4, "letters": 5}
    params["datasets"] = {DATASET: {"world": "toy", "generate": generate, "tokenize": {"context": 32, "pack": "sentences"}}}
    params["studies"] = {STUDY: {"world": "toy", "data": DATASET, "model": {}, "train": {}, "probe": {"steps": 60},
                                 "evaluate": {}}}
    return params


def check_outputs(root: Path) -> float:
    """Every stage's outputs are there; returns the copy accuracy."""
    import json

    for out in (f"data/{DATASET}/raw/train.parquet", f"data/{DATASET}/raw/test.parquet", f"data/{DATASET}/tokens/train.npy",
                f"data/{DATASET}/tokens/test.npy", f"data/{DATASET}/tokens/tokenizer.json", f"data/{DATASET}/tokens/meta.json",
                f"models/{STUDY}/model.safetensors", f"metrics/{STUDY}/train.json", f"metrics/{STUDY}/loss.csv",
                f"metrics/{STUDY}/probe.json", f"metrics/{STUDY}/probe/probe.csv", f"metrics/{STUDY}/evaluate.json",
                *(f"metrics/{STUDY}/detail/{stage}.json" for stage in ("train", "probe", "evaluate")),
                "reports/summary.md", "reports/toy_copy.png", "reports/loss.png", f"generations/{STUDY}/evaluate.parquet"):
        assert (root / out).is_file(), out
    assert json.loads((root / f"data/{DATASET}/tokens/meta.json").read_text())["world"] == "toy"
    summary = (root / "reports/summary.md").read_text()
    assert "## Toy: copy the prompt" in summary and f"| {STUDY} |" in summary
    assert set(json.loads((root / f"metrics/{STUDY}/probe.json").read_text())) == {"trained_accuracy", "control_accuracy"}
    probe = json.loads((root / f"metrics/{STUDY}/detail/probe.json").read_text())
    assert {"trained_accuracy", "control_accuracy", "majority"} <= set(probe)
    assert all(0.0 <= probe[k] <= 1.0 for k in ("trained_accuracy", "control_accuracy", "majority"))
    evaluated = json.loads((root / f"metrics/{STUDY}/detail/evaluate.json").read_text())
    assert evaluated["examples"] == TINY["evaluate"]["toy"]["examples"]
    for name in ("trained", "control"):
        accuracy = evaluated[name]["accuracy"]
        assert isinstance(accuracy, float) and 0.0 <= accuracy <= 1.0, (name, accuracy)
        assert len(evaluated[name]["position_accuracy"]) == 4
    assert not (root / "checkpoints" / STUDY).exists()
    return evaluated["trained"]["accuracy"]


def toy_imports(step: str | None) -> set[str]:
    """The absolute imports of the toy modules a stage runs: the package, its step module and the package
    modules they import (relatively: the package works under any name)."""
    todo, seen, found = ["__init__", *([step] if step else [])], set(), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((TOY / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1, f"toy_world/{name}.py reaches outside its package: {ast.unparse(node)}"
                todo += [node.module] if node.module else [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
    return found


def check_needs_only_declared_deps() -> None:
    """Each stage's toy modules import only the engine modules dvc.yaml declares for that stage (with the
    world's package as its one per-world dep), no other world, and the generators and the report no torch."""
    stages_yaml = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for stage, step in STEP.items():
        body = stages_yaml[stage].get("do", stages_yaml[stage])
        deps = [d.replace("${item.world}", "toy") for d in body["deps"]]
        imported = toy_imports(step)
        engine = {m for m in imported if m in modules()}
        assert not {m for m in engine if m.startswith("physlm.worlds.")}, f"{stage}: the toy world imports another world"
        needed = files(closure(*engine))
        missing = sorted(f for f in needed if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps))
        assert not missing, f"{stage}: the toy world imports files dvc.yaml does not declare for the stage: {missing}"
        if stage in ("generate", "tokenize", "report"):
            heavy = {m for m in closure(*engine) if "torch" in third_party(m)}
            heavy |= {m for m in imported if m.split(".")[0] == "torch"}
            assert not heavy, f"{stage}: the toy world's {step} imports torch through {sorted(heavy)}"


@pytest.fixture
def toy():
    """The toy world, registered in this process only (it is no package of physlm/worlds)."""
    assert "toy" not in worlds.names(), "a world named toy already exists"
    from toy_world import WORLD

    worlds.register(WORLD)
    try:
        yield WORLD
    finally:
        worlds.unregister("toy")


def test_toy_world_runs_every_stage_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread, toy) -> None:
    assert not (ROOT / "physlm" / "worlds" / "toy").exists()
    assert worlds.get("toy") is toy and toy.package == "toy_world"
    check_needs_only_declared_deps()
    monkeypatch.setenv("PHYSLM_TRACKING", "0")
    monkeypatch.chdir(tmp_path)  # the stages read params.yaml and write data/, models/, metrics/, reports/ here
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(toy_params(), sort_keys=False))
    for stage, module in STAGES.items():
        name = {"generate": DATASET, "tokenize": DATASET, "report": None}.get(stage, STUDY)
        run_stage(stage, module.main, [name] if name else [])
    check_outputs(tmp_path)
    for step in STEP.values():  # every step ran from the tests-only package
        if step:
            assert Path(toy.step(step).__file__).parent == TOY
    left = {p.name for p in tmp_path.iterdir()}  # no checkpoints/ left behind once training is done
    assert left == {"data", "generations", "logs", "metrics", "models", "params.yaml", "reports"}, left


# ---------------------------------------------------------------------------------------------------------
# Through DVC, the package copied into physlm/worlds/ of a throwaway repo


def sh(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.mark.slow
def test_toy_world_through_dvc(tmp_path: Path) -> None:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "PHYSLM_TRACKING": "0",
           "OMP_NUM_THREADS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    repo = tmp_path / "repo"
    repo.mkdir()
    no_cache = shutil.ignore_patterns("__pycache__")
    for item in ("physlm", "stages"):
        shutil.copytree(ROOT / item, repo / item, ignore=no_cache)
    shutil.copytree(TOY, repo / "physlm" / "worlds" / "toy", ignore=no_cache)  # the whole change: one package
    for item in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(ROOT / item, repo / item)
    (repo / "params.yaml").write_text(yaml.safe_dump(toy_params(), sort_keys=False))
    sh(["git", "init", "-q", "-b", "main"], repo, env)
    sh(["dvc", "init", "-q"], repo, env)
    shutil.copy(ROOT / ".dvcignore", repo / ".dvcignore")  # dvc init writes its own
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "baseline"], repo, env)

    first = sh(["dvc", "repro"], repo, env)
    assert ran(first) == {"validate", f"generate@{DATASET}", f"tokenize@{DATASET}", f"train@{STUDY}", f"probe@{STUDY}",
                          f"evaluate@{STUDY}", "report"}, first
    check_outputs(repo)
    assert ran(sh(["dvc", "repro"], repo, env)) == set()

    status = sh(["git", "status", "--porcelain", "--untracked-files=all"], repo, env)
    changed = {line[3:] for line in status.splitlines()}
    assert changed == {"dvc.lock", "metrics/params.ok", *(f"metrics/{STUDY}/{f}" for f in (
        "train.json", "loss.csv", "probe.json", "probe/probe.csv", "evaluate.json", "detail/train.json", "detail/probe.json",
        "detail/evaluate.json"))}, status


def in_copy(window: list[int]) -> list[int]:
    """1 where a `sentences` window's token is a copy letter or the <eos> closing a copy (the toy's loss: copy)."""
    marker, out = None, []
    for t in window:
        marker = t if t in (0, 2) else marker
        out.append(int(t == 1 or (t >= 3 and marker == 2)))
    return out


def test_toy_world_with_a_loss_mask_through_tokenize_and_train(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                one_thread, toy) -> None:
    """`tokenize.loss: copy`: tokenize writes each split's loss mask beside its windows (the copies and their
    <eos>), meta.json their count and share, and train takes the loss on the copies alone (its val loss is the
    trained model's on the test copies), counting its targets; the plain study has no mask and no count."""
    import json

    import numpy as np
    import torch

    from physlm.artifacts import load_model

    monkeypatch.setenv("PHYSLM_TRACKING", "0")
    monkeypatch.chdir(tmp_path)
    params = toy_params()
    params["datasets"]["toy_masked"] = {**params["datasets"][DATASET], "tokenize": {"context": 32, "pack": "sentences",
                                                                                     "loss": "copy"}}
    params["studies"]["toy_masked"] = {**params["studies"][STUDY], "data": "toy_masked"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for dataset, study in ((DATASET, STUDY), ("toy_masked", "toy_masked")):
        for stage in ("generate", "tokenize"):
            run_stage(stage, STAGES[stage].main, [dataset])
        run_stage("train", stages.train.main, [study])
    plain, masked = tmp_path / f"data/{DATASET}/tokens", tmp_path / "data/toy_masked/tokens"
    assert not list(plain.glob("*.loss.npy")) and "loss_mask" not in json.loads((plain / "meta.json").read_text())
    meta = json.loads((masked / "meta.json").read_text())
    assert meta["eos_loss"] is True and set(meta["loss_mask"]) == {"train", "test"}
    for split in ("train", "test"):
        windows, loss = np.load(masked / f"{split}.npy"), np.load(masked / f"{split}.loss.npy")
        assert np.array_equal(windows, np.load(plain / f"{split}.npy"))  # the same tokens, now with a mask
        assert loss.dtype == np.uint8 and loss.shape == windows.shape
        assert loss.tolist() == [in_copy(w) for w in windows.tolist()]
        assert meta["loss_mask"][split]["targets"] == int(loss[:, 1:].sum())
        assert meta["loss_mask"][split]["share"] == pytest.approx(loss[:, 1:].mean())
    detail = {name: json.loads((tmp_path / f"metrics/{name}/detail/train.json").read_text()) for name in (STUDY, "toy_masked")}
    assert "targets_seen" not in detail[STUDY]
    assert 0 < detail["toy_masked"]["targets_seen"] < detail["toy_masked"]["tokens_seen"] == detail[STUDY]["tokens_seen"]
    model = load_model(tmp_path / "models/toy_masked", "cpu").eval()  # the val loss is over the test copies only
    windows, loss = np.load(masked / "test.npy")[:8].astype(np.int64), np.load(masked / "test.loss.npy")[:8]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.from_numpy(windows[:, :-1]))[0].float(), -1)
    picked = logp.gather(-1, torch.from_numpy(windows[:, 1:, None]))[..., 0]
    on_copies, everywhere = -picked[torch.from_numpy(loss[:, 1:] == 1)].mean().item(), -picked.mean().item()
    assert detail["toy_masked"]["final_val_loss"] == pytest.approx(on_copies, abs=1e-5)
    assert abs(on_copies - everywhere) > 0.05
    assert "targets_seen" in (tmp_path / "metrics/toy_masked/loss.csv").read_text().splitlines()[0]
