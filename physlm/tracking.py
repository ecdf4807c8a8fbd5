"""MLflow tracking: a view on the DVC record (dvc.lock, metrics files and exp refs are the record).

- Tracking URI: `MLFLOW_TRACKING_URI` if set, else `sqlite:///<repo root>/mlflow.db`, the root taken from
  `DVC_ROOT` (DVC sets it to the original repository also for `--temp` and queued experiments) or the cwd.
- Artifacts go to `<repo root>/mlartifacts/<experiment>`, set explicitly when the experiment is created.
- The database and each experiment are created under a file lock (several stages starting at once can
  otherwise break a fresh SQLite database for good).
- Experiments are tagged `mlflow.experimentKind=custom_model_development` (a model-training experiment, not a
  GenAI one). MLflow 3.17's UI opens an experiment on the runs table or on GenAI traces according to its
  sidebar switch "GenAI / Model training" (browser local storage `mlflow.workflowType`, default GenAI;
  `?workflowType=machine_learning` in the URL overrides it); MLflow UIs that read the tag follow it.
- A run is named `<DVC experiment or 'workspace'>/<stage>@<study>` and tagged with the DVC experiment name,
  the stage, the git commit, the host, the device and the process (pid and its start time).
- The run opens lazily: `start_run` notes the start time, and the MLflow run (with its params) is created
  on the first metric or artifact, so a stage that fails on its inputs before logging leaves no run. It ends
  FINISHED (created then if nothing was logged), FAILED on an error, KILLED on Ctrl-C or SIGTERM.
- A stage killed outright (SIGKILL, the OOM killer) leaves its run RUNNING; the next run created on the same
  host marks such runs KILLED once their process is gone.
- Metrics are buffered and logged in batches.
- `PHYSLM_TRACKING=0` turns tracking off (unit tests). `import mlflow` is slow, so it happens lazily here.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock

BATCH = 500  # metrics per log_batch call (MLflow accepts up to 1000)
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"


def repo_root() -> Path:
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def enabled() -> bool:
    return os.environ.get("PHYSLM_TRACKING", "1") not in ("0", "false", "no")


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= flatten(value, f"{name}.")
        else:
            out[name] = value
    return out


def git_commit(root: Path) -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def now_ms() -> int:
    return int(time.time() * 1000)


def process_start(pid: int) -> str | None:
    """When process `pid` started (field 22 of /proc/<pid>/stat, clock ticks after boot), which tells it from a
    later process given the same pid; None if no such process is alive (a zombie is dead), "" without /proc."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # the name in (...) may hold spaces
    except OSError:
        return ""  # no /proc, or the process ended since: then it differs from the start time recorded
    return None if fields[0] == "Z" else fields[19]


def run_tags(study: str, stage: str, device: str, root: Path) -> dict[str, str]:
    """The run's tags, taken when the stage starts: what ran where, and the process that can end the run."""
    return {
        "dvc.exp_name": os.environ.get("DVC_EXP_NAME", "workspace"),
        "dvc.stage": os.environ.get("DVC_STAGE", f"{stage}@{study}"),
        "dvc.baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""),
        "git.commit": git_commit(root),
        "host": socket.gethostname(),
        "device": device,
        "physlm.study": study,
        "physlm.stage": stage,
        "physlm.pid": str(os.getpid()),
        "physlm.pid_start": process_start(os.getpid()) or "",
    }


def open_client(root: Path) -> Any:
    """An MlflowClient on `tracking_uri()`; a fresh database is created and migrated under the file lock."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient

    with FileLock(str(root / "mlflow.db.lock"), timeout=300):
        client = MlflowClient(tracking_uri=tracking_uri())
        client.search_experiments(max_results=1)
    return client


def experiment_id(client: Any, name: str, root: Path) -> str:
    """Get or create the experiment under a file lock, with an explicit artifact location and the model-training
    kind (also given to experiments made before the tag was)."""
    with FileLock(str(root / "mlflow.db.lock"), timeout=300):
        found = client.get_experiment_by_name(name)
        if found is None:
            return client.create_experiment(name, artifact_location=(root / "mlartifacts" / name).as_uri(), tags={KIND_TAG: KIND})
        if KIND_TAG not in found.tags:
            client.set_experiment_tag(found.experiment_id, KIND_TAG, KIND)
        return found.experiment_id


def reap_killed(client: Any) -> None:
    """Mark KILLED the RUNNING runs in physlm's experiments whose process on this host is gone (killed by SIGKILL
    or the OOM killer, it could not end its run) or whose pid now belongs to a later process."""
    experiments = [e.experiment_id for e in client.search_experiments(filter_string="name LIKE 'physlm/%'")]
    if not experiments:
        return
    running = client.search_runs(experiments, f"attributes.status = 'RUNNING' and tags.host = '{socket.gethostname()}'")
    for run in running:
        tags = run.data.tags
        if "physlm.pid" in tags and process_start(int(tags["physlm.pid"])) != tags.get("physlm.pid_start"):
            client.set_terminated(run.info.run_id, status="KILLED")


class Run:
    """One stage's MLflow run, created on the first metric or artifact; metrics are buffered and flushed in batches."""

    def __init__(self, study: str, stage: str, params: Mapping[str, Any], device: str) -> None:
        self.root, self.study, self.stage, self.params = repo_root(), study, stage, params
        self.start_time = now_ms()
        self.tags = run_tags(study, stage, device, self.root)
        self.client: Any = None
        self.run_id: str | None = None
        self._buffer: list[Any] = []

    def _open(self) -> str:
        """The MLflow run, created now if it is not yet (first clearing the runs of killed processes)."""
        if self.run_id is None:
            from mlflow.entities import Param

            self.client = open_client(self.root)
            experiment = experiment_id(self.client, f"physlm/{self.study}", self.root)
            reap_killed(self.client)
            name = f"{self.tags['dvc.exp_name']}/{self.stage}@{self.study}"
            self.run_id = self.client.create_run(experiment, start_time=self.start_time, tags=self.tags, run_name=name).info.run_id
            params = [Param(k, str(v)[:6000]) for k, v in flatten(self.params).items()]
            for i in range(0, len(params), 100):
                self.client.log_batch(self.run_id, params=params[i : i + 100])
        return self.run_id

    def log_metrics(self, metrics: Mapping[str, Any], step: int = 0) -> None:
        from mlflow.entities import Metric

        self._open()
        now = now_ms()
        for key, value in flatten(metrics).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value):
                self._buffer.append(Metric(key.replace("@", "_"), float(value), now, int(step)))
        if len(self._buffer) >= BATCH:
            self.flush()

    def log_artifact(self, path: str | Path) -> None:
        run_id = self._open()
        self.client.log_artifact(run_id, str(path))

    def flush(self) -> None:
        for i in range(0, len(self._buffer), BATCH):
            self.client.log_batch(self.run_id, metrics=self._buffer[i : i + BATCH])
        self._buffer.clear()

    def end(self, status: str) -> None:
        """Flush and end the run with `status`. A run never created stays so, unless the stage finished: every
        finished stage has its run."""
        if self.run_id is None:
            if status != "FINISHED":
                return
            self._open()
        try:
            self.flush()
        finally:
            self.client.set_terminated(self.run_id, status=status)


class NullRun(Run):
    """Tracking disabled: every call is a no-op."""

    def __init__(self) -> None: ...
    def log_metrics(self, metrics: Mapping[str, Any], step: int = 0) -> None: ...
    def log_artifact(self, path: str | Path) -> None: ...
    def flush(self) -> None: ...
    def end(self, status: str) -> None: ...


@contextmanager
def sigterm_exits() -> Iterator[None]:
    """For the duration, SIGTERM (`kill`, torchrun tearing a job down) raises SystemExit, so that the run ends
    KILLED rather than staying RUNNING. Only in the main thread (Python runs handlers there) and only over the
    default action; a forked child that inherits the handler dies of the signal as before."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    owner = os.getpid()

    def handler(signum: int, frame: Any) -> None:
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextmanager
def start_run(study: str, stage: str, params: Mapping[str, Any], device: str = "cpu") -> Iterator[Run]:
    """An MLflow run in experiment `physlm/<study>` for one stage execution, created on its first metric or
    artifact: FINISHED if the block ends, FAILED if it raises an error, KILLED on KeyboardInterrupt or SIGTERM."""
    if not enabled():
        yield NullRun()
        return
    run = Run(study, stage, params, device)
    status = "KILLED"
    with sigterm_exits():
        try:
            yield run
            status = "FINISHED"
        except Exception:
            status = "FAILED"
            raise
        finally:
            run.end(status)
