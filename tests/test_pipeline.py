"""End to end: the DVC pipeline in a throwaway git repo, every world at a tiny scale (conftest.tiny_every_world:
the grammar dataset with cfg_demo and cfg_uni, igsm_demo, bio_tiny with the finetuned bio_ft study, and the
playground's depo_tiny, mano_tiny and brevo_tiny).

1. `dvc repro` runs every stage once (validate first), every world's outputs exist, the DVC metrics files are
   flat dicts of numbers without timings; a second repro runs nothing.
2. Everything committed, `dvc repro -f` reruns every stage and leaves git clean: the git-tracked results and
   dvc.lock are byte-identical (a rerun that changes no result changes no tracked file).
3. A bad param (through `exp run -S`, a typo, a probe layer deeper than the model) stops at validate with one
   `error: validate:` line naming the key, and every output stays in place, byte-identical; with the params
   fixed, nothing reruns.
4. `exp run -S` on one study's evaluate param reruns validate, that study's evaluate and the report; on the
   shared model.depth, the train/probe/evaluate of the studies that take the shared default and the report;
   generate and tokenize never. (The other worlds' studies set their own depth: their train stages rerun too,
   DVC sees the shared `model` section change, but they make byte-identical models, so nothing after them does.)
5. Back to the committed params: every grammar study's train/probe/evaluate comes from DVC's run-cache (nothing
   retrained; only validate, whose marker is not run-cached, may rerun), the workspace is byte-identical to the
   commit. Then `physlm.load` on this project (tests/test_load.py's check_loading, check_revisions): every world's
   study by name, encode/decode on its training rows, every example notebook (examples/*.py), the depth2
   experiment through `rev=`; the project is left byte-identical.
6. Two queued experiments run side by side (`queue start -j 2`) with MLflow on, creating a fresh mlflow.db
   together: both succeed, `exp show` has their params, the database is intact and each has its FINISHED run
   tagged with its name.
7. `dvc exp push` to a bare git remote and the local DVC remote.
8. `dvc push`, clone the bare remote elsewhere, `dvc pull`: `dvc status` up to date, `dvc repro` a no-op; a study
   loaded through the bare git remote (`rev=`, `remote=`) has the workspace's weights.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import tiny_every_world
from test_load import check_loading, check_remote, check_revisions

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
PER_DATASET, PER_STUDY = ("generate", "tokenize"), ("train", "probe", "evaluate")
OUTPUT_DIRS = ("data", "models", "metrics", "reports")
TIMING = ("seconds", "tokens_per_s", "data_wait")


def sh(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def fails(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode != 0, f"{' '.join(cmd)} succeeded:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(repo: Path) -> dict[str, str]:
    """sha256 of every pipeline output file and of dvc.lock."""
    files = [repo / "dvc.lock", *(p for d in OUTPUT_DIRS for p in sorted((repo / d).rglob("*")) if p.is_file())]
    return {str(p.relative_to(repo)): sha256(p) for p in files}


def git_dirty(repo: Path, env: dict[str, str]) -> str:
    """`git status --porcelain` (untracked files too) and, when not empty, the diff: what a clean run must not leave."""
    status = sh(["git", "status", "--porcelain", "--untracked-files=all"], repo, env)
    if status:
        status += sh(["git", "--no-pager", "diff", "--stat"], repo, env)
        status += sh(["git", "--no-pager", "diff", "--", "dvc.lock", "metrics"], repo, env)[:6000]
    return status


def make_repo(path: Path, env: dict[str, str], remote: Path) -> dict:
    params = tiny_every_world()
    path.mkdir()
    for item in ("physlm", "stages"):
        shutil.copytree(ROOT / item, path / item, ignore=shutil.ignore_patterns("__pycache__"))
    for item in ("dvc.yaml", ".gitignore"):
        shutil.copy(ROOT / item, path / item)
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["git", "init", "-q", "-b", "main"], path, env)
    sh(["dvc", "init", "-q"], path, env)
    shutil.copy(ROOT / ".dvcignore", path / ".dvcignore")  # dvc init writes its own; this one keeps __pycache__ out of deps
    sh(["dvc", "remote", "add", "-d", "store", str(remote)], path, env)
    sh(["git", "add", "-A"], path, env)
    sh(["git", "commit", "-qm", "baseline"], path, env)
    return params


def check_outputs(repo: Path, params: dict) -> None:
    """Every world's outputs, and DVC metrics that are flat headline numbers, never timings."""
    for out in ("data/cfg_demo/raw/train.parquet", "data/cfg_demo/tokens/tokenizer.json", "models/cfg_demo/model.safetensors",
                "models/cfg_uni/model.safetensors", "metrics/cfg_demo/loss.csv", "metrics/cfg_demo/probe/probe.csv",
                "metrics/cfg_demo/probe/attention_layers.csv", "reports/probe_cfg_demo.png", "reports/generation.png",
                "data/igsm_demo/raw/train.parquet", "data/igsm_demo/tokens/meta.json", "models/igsm_demo/model.safetensors",
                "reports/igsm_igsm_demo.png", "reports/vprobe_igsm_demo.png",
                "data/bio_tiny/raw/bios.parquet", "data/bio_tiny/tokens/meta.json", "models/bio_ft/model.safetensors",
                "models/bio_ft/pretrained/model.safetensors", "reports/bio_regimes.png", "reports/qprobe_bio_ft.png",
                "data/depo_tiny/tokens/train.loss.npy", "models/depo_tiny/model.safetensors", "models/mano_tiny/model.safetensors",
                "data/brevo_tiny/tokens/train.loss.npy", "models/brevo_tiny/model.safetensors",
                "data/capacity_tiny/raw/capacity.json", "models/capacity_tiny/model.safetensors",
                "reports/summary.md", "metrics/params.ok"):
        assert (repo / out).is_file(), out
    summary = (repo / "reports/summary.md").read_text()
    assert "## iGSM: full-solution accuracy" in summary and "## Biographies: QA exact-match accuracy" in summary
    assert "## Depo (Part 4.1)" in summary and "## Mano: " in summary and "## Brevo: " in summary
    assert "## Capacity" in summary
    for study in params["studies"]:
        assert not (repo / "checkpoints" / study).exists(), study  # removed once a training completes
        assert (repo / "logs" / study / "train.json").is_file(), study  # the timings: untracked, not in metrics/
        assert (repo / "generations" / study / "evaluate.parquet").is_file(), study  # DVC-cached, not in git
        for stage in PER_STUDY:
            headline = json.loads((repo / f"metrics/{study}/{stage}.json").read_text())
            assert headline and isinstance(headline, dict), f"{study}/{stage}"
            for key, value in headline.items():
                assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{study}/{stage}.json: {key}: {value!r}"
                assert not any(t in key for t in TIMING), f"{study}/{stage}.json: {key}"
            detail = (repo / f"metrics/{study}/detail/{stage}.json").read_text()
            assert not any(f'"{t}' in detail or f"_{t}" in detail for t in TIMING), f"{study}/detail/{stage}.json"


def restore_params(repo: Path, env: dict[str, str]) -> None:
    """params.yaml as committed. Not `git checkout params.yaml`: after a failed `dvc exp run -S` (DVC 3.67) the git
    index can hold the stat data of the edited file with the committed blob, so when the edit keeps the file's size
    (steps 12 -> -5) git sees no change and `git checkout` leaves the bad value in place."""
    (repo / "params.yaml").write_text(sh(["git", "show", "HEAD:params.yaml"], repo, env))


def bad_param(repo: Path, env: dict[str, str], cmd: list[str], key: str, before: dict[str, str]) -> None:
    """`cmd` fails at validate with one `error: validate:` line naming `key`, nothing else ran and every output is
    still there, byte-identical (validate's own marker, metrics/params.ok, aside: DVC removes a stage's outputs
    before running it unless dvc.yaml marks them persist); then params.yaml is restored."""
    out = fails(cmd, repo, env)
    errors = [line for line in out.splitlines() if line.startswith("error: validate:")]
    assert len(errors) == 1 and key in errors[0], out
    assert ran(out) == {"validate"}, out
    marker = "metrics/params.ok"
    assert {k: v for k, v in snapshot(repo).items() if k != marker} == {k: v for k, v in before.items() if k != marker}
    restore_params(repo, env)


def write_params(repo: Path, params: dict, key: str, value: object) -> None:
    """params.yaml with `key` (dotted) set to `value`, as an editor would write it."""
    edited = json.loads(json.dumps(params))
    *parents, leaf = key.split(".")
    node = edited
    for part in parents:
        node = node[part]
    node[leaf] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))


def test_pipeline_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "PHYSLM_TRACKING": "0",
           "OMP_NUM_THREADS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    for var in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME"):
        env.pop(var, None)
    repo, remote, origin, clone = tmp_path / "repo", tmp_path / "dvc-remote", tmp_path / "origin.git", tmp_path / "clone"
    params = make_repo(repo, env, remote)
    datasets, studies = list(params["datasets"]), list(params["studies"])
    every = ({"validate", "report"} | {f"{s}@{d}" for s in PER_DATASET for d in datasets}
             | {f"{s}@{st}" for s in PER_STUDY for st in studies})

    # 1. every world through DVC; a second repro runs nothing
    first = sh(["dvc", "repro"], repo, env)
    assert ran(first) == every, first
    assert first.index("Running stage 'validate'") < min(first.index(f"Running stage '{s}'") for s in every - {"validate"})
    check_outputs(repo, params)
    assert ran(sh(["dvc", "repro"], repo, env)) == set()

    # 2. a forced rerun that changes no result leaves git clean (dvc.lock and the tracked metrics byte-identical)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "repro"], repo, env)
    before = snapshot(repo)
    forced = sh(["dvc", "repro", "-f"], repo, env)
    assert ran(forced) == every, forced
    assert not git_dirty(repo, env)
    changed = sorted(k for k, v in snapshot(repo).items() if before.get(k) != v)
    assert not changed, f"dvc-tracked outputs differ after a forced rerun: {changed}"
    outputs = snapshot(repo)

    # 3. a bad param never deletes outputs: validate stops the pipeline first
    bad_param(repo, env, ["dvc", "exp", "run", "-S", "studies.cfg_uni.train.steps=-5"], "studies.cfg_uni.train.steps", outputs)
    write_params(repo, params, "studies.bio_ft.model.dpeth", 3)
    bad_param(repo, env, ["dvc", "repro"], "studies.bio_ft.model.dpeth", outputs)
    write_params(repo, params, "studies.bio_ft.probe.layers", [5])
    bad_param(repo, env, ["dvc", "repro"], "studies.bio_ft", outputs)
    fixed = sh(["dvc", "repro"], repo, env)  # the params fixed: nothing reruns (validate at most, to rewrite its marker)
    assert ran(fixed) <= {"validate"}, fixed
    assert snapshot(repo) == outputs
    assert not git_dirty(repo, env)

    # 4. -S on one study's param reruns that study's stage; on a shared default, the studies that take it
    late = sh(["dvc", "exp", "run", "-n", "samples6", "-S", "studies.cfg_uni.evaluate.samples=6"], repo, env)
    assert ran(late) == {"validate", "evaluate@cfg_uni", "report"}, late
    restore_params(repo, env)
    deeper = sh(["dvc", "exp", "run", "-n", "depth2", "-S", "model.depth=2"], repo, env)
    shared = [s for s in studies if "depth" not in params["studies"][s]["model"]]
    own = [s for s in studies if s not in shared]
    assert shared == ["cfg_demo", "cfg_uni"]  # the other worlds' studies set their own depth
    # Their train stages still rerun: dvc.yaml gives each train stage the whole shared `model` section
    # as params, and DVC cannot tell that a study overrides the key that changed. They retrain to byte-identical
    # models, so nothing downstream of them reruns.
    assert ran(deeper) == {"validate", "report"} | {f"{s}@{st}" for s in PER_STUDY for st in shared} | {
        f"train@{st}" for st in own}, deeper
    for study in own:
        for path in (f"models/{study}/model.safetensors", f"metrics/{study}/train.json", f"metrics/{study}/loss.csv"):
            assert sha256(repo / path) == outputs[path], path
    assert json.loads((repo / "models/cfg_demo/config.json").read_text())["depth"] == 2
    assert json.loads((repo / "models/igsm_demo/config.json").read_text())["depth"] == 1

    # 5. back to the committed params: restored from the run-cache, not retrained
    restore_params(repo, env)
    back = sh(["dvc", "repro"], repo, env)
    for study in shared:
        for stage in PER_STUDY:
            assert f"Stage '{stage}@{study}' is cached - skipping run, checking out outputs" in back, back
    assert ran(back) <= {"validate"}, back  # validate's persistent marker keeps it out of the run-cache; it is cheap
    assert snapshot(repo) == outputs
    assert not git_dirty(repo, env)

    # 5b. one-line loading (physlm/load.py, tests/test_load.py): every world's study by name, every example notebook
    # run on it, and the depth2 experiment's model through rev=; nothing in the project changes
    check_loading(repo, params, tmp_path / "figures")
    check_revisions(repo, "depth2", 2)
    assert snapshot(repo) == outputs
    assert not git_dirty(repo, env)

    # 6. two queued experiments side by side, MLflow on, creating a fresh database together
    tracked = {**env, "PHYSLM_TRACKING": "1"}
    assert not (repo / "mlflow.db").exists()
    queued = {"q5": 5, "q7": 7}
    for name, samples in queued.items():
        sh(["dvc", "exp", "run", "--queue", "-n", name, "-S", f"studies.cfg_uni.evaluate.samples={samples}"], repo, tracked)
    sh(["dvc", "queue", "start", "-j", "2"], repo, tracked)
    try:
        status = wait_for_queue(repo, tracked, list(queued))
    finally:
        subprocess.run(["dvc", "queue", "stop"], cwd=repo, env=env, capture_output=True, check=False)
    for name in queued:
        if not re.search(rf"\b{name}\b.*Success", status):
            pytest.fail(f"queued experiment {name} did not succeed:\n{status}\n"
                        + subprocess.run(["dvc", "queue", "logs", name], cwd=repo, env=env, capture_output=True, text=True,
                                         check=False).stdout)
    shown = sh(["dvc", "exp", "show", "--no-pager", "--csv"], repo, env)
    rows = list(csv_rows(shown))
    for name, samples in queued.items():
        row = next((r for r in rows if r["Experiment"] == name), None)
        assert row is not None, shown
        assert row["studies.cfg_uni.evaluate.samples"] == str(samples), row
    check_mlflow(repo, queued)

    # 7. dvc exp push: the experiment ref to a bare git remote, its outputs to the DVC remote
    sh(["git", "init", "-q", "--bare", "-b", "main", str(origin)], tmp_path, env)
    sh(["git", "remote", "add", "origin", str(origin)], repo, env)
    sh(["dvc", "exp", "push", "origin", "q5"], repo, env)
    refs = sh(["git", "-C", str(origin), "for-each-ref", "refs/exps"], tmp_path, env)
    assert "q5" in refs and "q7" not in refs, refs
    assert any(p.is_file() for p in remote.rglob("*")), "dvc exp push sent nothing to the DVC remote"

    # 8. push, clone elsewhere, pull: up to date, nothing to reproduce
    sh(["git", "push", "-q", "origin", "main"], repo, env)
    sh(["dvc", "push"], repo, env)
    sh(["git", "clone", "-q", str(origin), str(clone)], tmp_path, env)
    sh(["dvc", "pull"], clone, env)
    status = sh(["dvc", "status"], clone, env)
    assert "up to date" in status, status
    assert ran(sh(["dvc", "repro"], clone, env)) == set()
    assert snapshot(clone) == outputs
    check_remote(origin, repo)  # load_study through the git remote, the weights from the DVC remote


def wait_for_queue(repo: Path, env: dict[str, str], names: list[str], timeout: float = 420) -> str:
    """Poll `dvc queue status` until none of `names` is queued or running; its last output."""
    deadline = time.monotonic() + timeout
    while True:
        status = sh(["dvc", "queue", "status"], repo, env)
        lines = [line for line in status.splitlines() if any(re.search(rf"\b{n}\b", line) for n in names)]
        if len(lines) == len(names) and not any(s in line for line in lines for s in ("Queued", "Running")):
            return status
        assert time.monotonic() < deadline, f"the queue did not finish in {timeout} s:\n{status}"
        time.sleep(5)  # each poll is a dvc process, competing with the experiments for the CPU


def csv_rows(text: str) -> csv.DictReader:
    return csv.DictReader(io.StringIO(text))


def check_mlflow(repo: Path, queued: dict[str, int]) -> None:
    """The database the two queued experiments created together is intact, and each experiment's stages logged
    FINISHED runs tagged (and named) with the experiment's name."""
    db = repo / "mlflow.db"
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("physlm/cfg_uni")
    assert experiment is not None
    assert experiment.artifact_location == (repo / "mlartifacts" / "physlm/cfg_uni").as_uri()
    experiments = [e.experiment_id for e in client.search_experiments()]
    for name, samples in queued.items():
        runs = client.search_runs(experiments, filter_string=f"tags.`dvc.exp_name` = '{name}'")
        assert [r.data.tags["dvc.stage"] for r in runs] == ["evaluate@cfg_uni"], name  # the only tracked stage it reran
        run = runs[0]
        assert run.info.status == "FINISHED", name
        assert run.info.run_name in (f"{name}/evaluate@cfg_uni", "evaluate@cfg_uni"), run.info.run_name
        assert {"git.commit", "host", "device", "dvc.baseline_rev"} <= set(run.data.tags)
        assert run.data.params["evaluate.samples"] == str(samples), run.data.params
