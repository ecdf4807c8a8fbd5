"""MLflow tracking: a view on the DVC record (dvc.lock, metrics files and exp refs are the record).

- Tracking URI: `MLFLOW_TRACKING_URI` if set, else `sqlite:///<repo root>/mlflow.db`, the root taken from
  `DVC_ROOT` (DVC sets it to the original repository also for `--temp` and queued experiments) or the cwd.
- Artifacts go to `<repo root>/mlartifacts/<experiment>`, set explicitly when the experiment is created.
- The database and each experiment are created under a file lock (several stages starting at once can
  otherwise break a fresh SQLite database for good).
- Metrics are buffered and logged in batches; runs are tagged with the DVC experiment name, the stage, the
  git commit, the host and the device.
- `PHYSLM_TRACKING=0` turns tracking off (unit tests). `import mlflow` is slow, so it happens lazily here.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock

BATCH = 500  # metrics per log_batch call (MLflow accepts up to 1000)


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


class Run:
    """One MLflow run; metrics are buffered and flushed in batches."""

    def __init__(self, client: Any, run_id: str) -> None:
        self.client, self.run_id = client, run_id
        self._buffer: list[Any] = []

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in flatten(params).items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, Any], step: int = 0) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        for key, value in flatten(metrics).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
                self._buffer.append(Metric(key.replace("@", "_"), float(value), now, int(step)))
        if len(self._buffer) >= BATCH:
            self.flush()

    def log_artifact(self, path: str | Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def flush(self) -> None:
        for i in range(0, len(self._buffer), BATCH):
            self.client.log_batch(self.run_id, metrics=self._buffer[i : i + BATCH])
        self._buffer.clear()


class NullRun(Run):
    """Tracking disabled: every call is a no-op."""

    def __init__(self) -> None:
        super().__init__(None, "")

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, Any], step: int = 0) -> None: ...
    def log_artifact(self, path: str | Path) -> None: ...
    def flush(self) -> None: ...


def _experiment_id(client: Any, name: str, root: Path) -> str:
    """Get or create the experiment under a file lock, with an explicit artifact location."""
    with FileLock(str(root / "mlflow.db.lock"), timeout=300):
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        return client.create_experiment(name, artifact_location=(root / "mlartifacts" / name).as_uri())


@contextmanager
def start_run(study: str, stage: str, params: Mapping[str, Any], device: str = "cpu") -> Iterator[Run]:
    """An MLflow run in experiment `physlm/<study>` for one stage execution; FAILED if the block raises."""
    if not enabled():
        yield NullRun()
        return
    root = repo_root()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient

    with FileLock(str(root / "mlflow.db.lock"), timeout=300):
        client = MlflowClient(tracking_uri=tracking_uri())  # creates and migrates a fresh database
        client.search_experiments(max_results=1)
    experiment = _experiment_id(client, f"physlm/{study}", root)
    tags = {
        "dvc.exp_name": os.environ.get("DVC_EXP_NAME", "workspace"),
        "dvc.stage": os.environ.get("DVC_STAGE", f"{stage}@{study}"),
        "dvc.baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""),
        "git.commit": git_commit(root),
        "host": socket.gethostname(),
        "device": device,
        "physlm.study": study,
        "physlm.stage": stage,
    }
    run = Run(client, client.create_run(experiment, run_name=f"{stage}@{study}", tags=tags).info.run_id)
    run.log_params(params)
    status = "FAILED"
    try:
        yield run
        status = "FINISHED"
    finally:
        run.flush()
        client.set_terminated(run.run_id, status=status)
