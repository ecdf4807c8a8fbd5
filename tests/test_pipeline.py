"""End to end: the DVC pipeline in a throwaway git repo, at a tiny scale.

Two studies (cfg_demo and the cfg_uni variant) share one dataset. repro -> no-op repro -> `exp run -S` on
a late-stage param (only evaluate and the report rerun) ->
`exp run -S model.depth` (train and downstream rerun; generate and tokenize do not) -> MLflow runs tagged ->
push to an absolute-path local remote -> clone + pull elsewhere -> `dvc status` clean and `dvc repro` a no-op.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import tiny_params

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

def sh(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated MLflow database, copied into each repo instead of migrating a fresh one per test."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def make_repo(path: Path, env: dict[str, str], remote: Path, mlflow_db: Path) -> None:
    path.mkdir()
    for item in ("physlm", "stages"):
        shutil.copytree(ROOT / item, path / item, ignore=shutil.ignore_patterns("__pycache__"))
    for item in ("dvc.yaml", ".gitignore"):
        shutil.copy(ROOT / item, path / item)
    (path / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    shutil.copy(mlflow_db, path / "mlflow.db")
    sh(["git", "init", "-q", "-b", "main"], path, env)
    sh(["dvc", "init", "-q"], path, env)
    shutil.copy(ROOT / ".dvcignore", path / ".dvcignore")  # keeps __pycache__ out of directory deps
    sh(["dvc", "remote", "add", "-d", "store", str(remote)], path, env)
    sh(["git", "add", "-A"], path, env)
    sh(["git", "commit", "-qm", "baseline"], path, env)


def test_pipeline_end_to_end(tmp_path: Path, mlflow_db: Path) -> None:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "PHYSLM_TRACKING": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    repo, remote, clone = tmp_path / "repo", tmp_path / "remote", tmp_path / "clone"
    make_repo(repo, env, remote, mlflow_db)

    first = sh(["dvc", "repro"], repo, env)
    per_study = ("train", "probe", "evaluate")
    stages = {f"{s}@{study}" for s in per_study for study in ("cfg_demo", "cfg_uni")}
    assert ran(first) == stages | {"generate@cfg_demo", "tokenize@cfg_demo", "report"}  # one dataset, two studies
    for out in ("data/cfg_demo/raw/train.parquet", "data/cfg_demo/tokens/tokenizer.json", "models/cfg_demo/model.safetensors",
                "metrics/cfg_demo/loss.csv", "metrics/cfg_demo/probe/probe.csv", "metrics/cfg_demo/probe/attention_layers.csv", "metrics/cfg_demo/evaluate.json",
                "reports/summary.md", "reports/generation.png", "reports/probe_cfg_demo.png"):
        assert (repo / out).is_file(), out
    assert not (repo / "checkpoints" / "cfg_demo").exists()

    assert ran(sh(["dvc", "repro"], repo, env)) == set()
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "repro"], repo, env)

    late = sh(["dvc", "exp", "run", "-S", "evaluate.cfg.samples=6"], repo, env)
    assert ran(late) == {"evaluate@cfg_demo", "evaluate@cfg_uni", "report"}

    deeper = sh(["dvc", "exp", "run", "-S", "model.depth=2"], repo, env)
    assert ran(deeper) == stages | {"report"}
    assert '"depth": 2' in (repo / "models/cfg_demo/config.json").read_text()
    shown = sh(["dvc", "exp", "show", "--no-pager", "--csv"], repo, env)
    assert "model.depth" in shown

    check_mlflow(repo)

    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "depth 2"], repo, env)
    sh(["dvc", "push"], repo, env)
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    sh(["dvc", "pull"], clone, env)
    status = sh(["dvc", "status"], clone, env)
    assert "up to date" in status, status
    assert ran(sh(["dvc", "repro"], clone, env)) == set()
    assert (clone / "models/cfg_demo/model.safetensors").is_file()


def check_mlflow(repo: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("physlm/cfg_demo")
    assert experiment is not None
    assert experiment.artifact_location == (repo / "mlartifacts" / "physlm/cfg_demo").as_uri()
    runs = client.search_runs([experiment.experiment_id])
    stages = [r.data.tags["dvc.stage"] for r in runs]
    assert stages.count("train@cfg_demo") == 2 and stages.count("evaluate@cfg_demo") == 3
    train = next(r for r in runs if r.data.tags["dvc.stage"] == "train@cfg_demo")
    assert {"git.commit", "host", "device", "dvc.exp_name"} <= set(train.data.tags)
    assert all(r.info.status == "FINISHED" for r in runs)
    assert len(client.get_metric_history(train.info.run_id, "loss")) >= 4
