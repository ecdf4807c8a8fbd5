"""MLflow tracking (physlm.tracking): run names and tags, the experiment kind, lazy runs (no run for a stage
that fails before logging; FAILED after), runs of killed processes marked KILLED, and a fresh database
created by several stages starting at the same moment."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from physlm import tracking
from physlm.tracking import KIND, KIND_TAG, start_run

ROOT = Path(__file__).resolve().parents[1]
TAGS = {"dvc.exp_name", "dvc.stage", "physlm.study", "physlm.stage", "git.commit", "host", "device", "physlm.pid"}

# A stage in a child process: imports first (seconds, also MLflow's SQL store, else imported by the first
# client under the lock), waits for the go file so that all start at once, then opens its run and logs;
# argv: study, stage, go file, ready file, what to do after logging (end the block, or send that signal).
CHILD = """
import os, signal, sys, time
from pathlib import Path
import mlflow.store.tracking.sqlalchemy_store, mlflow.tracking
from physlm.tracking import start_run

study, stage, go, ready, then = sys.argv[1:]
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.01)
with start_run(study, stage, {"seed": 1, "model": {"depth": 2}}) as run:
    for step in range(5):
        run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    run.flush()
    if then != "end":
        os.kill(os.getpid(), getattr(signal, then))
"""


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated MLflow database, copied into each test's repo where a fresh database is not the point."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def stage_env(root: Path) -> dict[str, str]:
    """The environment of a stage run by `dvc exp run` in `root`, with tracking on and the default database."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "DVC_STAGE")}
    return env | {"DVC_ROOT": str(root), "DVC_EXP_NAME": "exp-test", "PHYSLM_TRACKING": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
                  "PYTHONPATH": str(ROOT)}


@pytest.fixture
def repo(tmp_path: Path, mlflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository root holding a copy of the migrated database, as this process's DVC_ROOT."""
    shutil.copy(mlflow_db, tmp_path / "mlflow.db")
    for key, value in stage_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_STAGE", raising=False)
    return tmp_path


def client(root: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


def runs(root: Path, study: str) -> list:
    experiment = client(root).get_experiment_by_name(f"physlm/{study}")
    return [] if experiment is None else client(root).search_runs([experiment.experiment_id])


def spawn(root: Path, study: str, stage: str, then: str = "end", go: Path | None = None) -> subprocess.Popen:
    """A stage process (see CHILD); it starts as soon as `go` exists (at once without one: `root` exists)."""
    go = go or root
    env = stage_env(root) | {"DVC_STAGE": f"{stage}@{study}"}
    ready = root / f"ready-{study}-{stage}"
    return subprocess.Popen([sys.executable, "-c", CHILD, study, stage, str(go), str(ready), then], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_run_name_tags_params_and_kind(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = int(time.time() * 1000)
    with start_run("demo", "train", {"model": {"depth": 2}}, device="cpu") as run:
        time.sleep(0.05)
        run.log_metrics({"loss": 2.0, "skipped": "text"}, step=3)
    monkeypatch.delenv("DVC_EXP_NAME")
    with start_run("demo", "evaluate", {}) as run:
        run.log_metrics({"accuracy": 0.5})

    trained, evaluated = sorted(runs(repo, "demo"), key=lambda r: r.info.start_time)
    assert trained.info.run_name == "exp-test/train@demo" and evaluated.info.run_name == "workspace/evaluate@demo"
    assert TAGS <= set(trained.data.tags)
    assert trained.data.tags["dvc.stage"] == "train@demo" and trained.data.tags["physlm.stage"] == "train"
    assert trained.data.params == {"model.depth": "2"} and trained.data.metrics == {"loss": 2.0}
    assert trained.info.status == evaluated.info.status == "FINISHED"
    history = client(repo).get_metric_history(trained.info.run_id, "loss")
    assert before <= trained.info.start_time < history[0].timestamp - 40  # the start of the stage, not of the run's creation
    experiment = client(repo).get_experiment_by_name("physlm/demo")
    assert experiment.tags[KIND_TAG] == KIND == "custom_model_development"


def test_existing_experiment_gets_the_kind(repo: Path) -> None:
    old = client(repo).create_experiment("physlm/old")
    with start_run("old", "train", {}) as run:
        run.log_metrics({"loss": 1.0})
    assert client(repo).get_experiment(old).tags[KIND_TAG] == KIND


def test_error_after_logging_fails_the_run(repo: Path) -> None:
    with pytest.raises(RuntimeError), start_run("demo", "train", {}) as run:
        run.log_metrics({"loss": 1.0}, step=1)
        raise RuntimeError("diverged")
    (failed,) = runs(repo, "demo")
    assert failed.info.status == "FAILED" and failed.info.end_time is not None and failed.data.metrics == {"loss": 1.0}


def test_error_before_logging_leaves_no_run(repo: Path) -> None:
    with pytest.raises(FileNotFoundError), start_run("demo", "train", {}):
        Path(repo / "missing.parquet").read_bytes()
    assert runs(repo, "demo") == []


def test_interrupt_after_logging_kills_the_run_and_silence_still_finishes(repo: Path) -> None:
    with pytest.raises(KeyboardInterrupt), start_run("demo", "train", {}) as run:
        run.log_metrics({"loss": 1.0})
        raise KeyboardInterrupt
    with start_run("demo", "report", {}):
        pass
    statuses = {r.data.tags["physlm.stage"]: r.info.status for r in runs(repo, "demo")}
    assert statuses == {"train": "KILLED", "report": "FINISHED"}


def test_killed_processes_runs_are_marked_killed(repo: Path) -> None:
    """SIGKILL leaves the run RUNNING until the next run is created; SIGTERM ends it KILLED at once. A live
    process's run is left alone; one whose pid now belongs to a later process is KILLED."""
    exits = {"SIGKILL": -signal.SIGKILL, "SIGTERM": 128 + signal.SIGTERM}  # SIGTERM: SystemExit from the handler
    children = {}
    for then in ("SIGTERM", "SIGKILL"):  # one after the other: a run created after the SIGKILL would reap its run
        children[then] = child = spawn(repo, f"s{then}", "train", then)
        _, err = child.communicate(timeout=120)
        assert child.returncode == exits[then], err
    (killed,) = runs(repo, "sSIGKILL")
    assert killed.info.status == "RUNNING" and killed.data.tags["physlm.pid"] == str(children["SIGKILL"].pid)
    (terminated,) = runs(repo, "sSIGTERM")
    assert terminated.info.status == "KILLED" and len(client(repo).get_metric_history(terminated.info.run_id, "loss")) == 5

    me = client(repo).get_experiment_by_name("physlm/sSIGKILL").experiment_id
    own = {"host": socket.gethostname(), "physlm.pid": str(os.getpid())}
    alive = client(repo).create_run(me, tags=own | {"physlm.pid_start": tracking.process_start(os.getpid())}).info.run_id
    reused = client(repo).create_run(me, tags=own | {"physlm.pid_start": "0"}).info.run_id
    elsewhere = client(repo).create_run(me, tags=own | {"host": "elsewhere", "physlm.pid_start": "0"}).info.run_id

    before = int(time.time() * 1000)
    with start_run("next", "train", {}) as run:
        run.log_metrics({"loss": 1.0})
    status = {run_id: client(repo).get_run(run_id).info for run_id in (killed.info.run_id, alive, reused, elsewhere)}
    assert status[killed.info.run_id].status == "KILLED" and status[killed.info.run_id].end_time >= before
    assert status[reused].status == "KILLED"
    assert status[alive].status == status[elsewhere].status == "RUNNING"
    assert [r.info.status for r in runs(repo, "next")] == ["FINISHED"]


@pytest.mark.slow
def test_fresh_database_under_concurrent_stages(tmp_path: Path) -> None:
    """Stages of four studies, two of them of one study, open their runs at the same moment on a database that
    does not exist yet: it comes out whole, with every run."""
    stages = [("a", "train"), ("a", "probe"), ("b", "train"), ("c", "evaluate")]
    go = tmp_path / "go"
    children = [spawn(tmp_path, study, stage, go=go) for study, stage in stages]
    deadline = time.time() + 120
    while not all((tmp_path / f"ready-{study}-{stage}").exists() for study, stage in stages):
        assert time.time() < deadline and all(c.poll() is None for c in children), [c.communicate() for c in children]
        time.sleep(0.05)
    assert not (tmp_path / "mlflow.db").exists()
    go.touch()
    for child in children:
        _, err = child.communicate(timeout=180)
        assert child.returncode == 0, err

    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    for study in ("a", "b", "c"):
        found = runs(tmp_path, study)
        assert sorted(r.info.run_name for r in found) == sorted(f"exp-test/{stage}@{study}" for s, stage in stages if s == study)
        for run in found:
            assert TAGS <= set(run.data.tags) and run.data.tags["dvc.stage"] == f"{run.data.tags['physlm.stage']}@{study}"
            assert run.info.status == "FINISHED" and run.data.params == {"seed": "1", "model.depth": "2"}
            assert len(client(tmp_path).get_metric_history(run.info.run_id, "loss")) == 5
