"""The iGSM study through every stage script at a tiny scale (generate -> tokenize -> train -> probe ->
evaluate -> report), and one-line errors on bad input (worker-count independence is tests/test_igsm.py's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from conftest import tiny_igsm_params

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def tiny_igsm(tmp_path: Path, **generate) -> Path:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_igsm_params(**generate)))
    return tmp_path


def run(stage: str, cwd: Path, name: str = "igsm_demo") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PHYSLM_TRACKING": "0"}
    args = [name] if stage != "report" else []
    return subprocess.run([sys.executable, "-m", f"stages.{stage}", *args], cwd=cwd, capture_output=True, text=True, env=env)


def test_igsm_study_runs_every_stage(tmp_path: Path) -> None:
    repo = tiny_igsm(tmp_path)
    for stage in ("generate", "tokenize", "train", "probe", "evaluate", "report"):
        proc = run(stage, repo)
        assert proc.returncode == 0, f"{stage}: {proc.stderr[-2000:]}"
    raw = repo / "data/igsm_demo/raw"
    assert sorted(p.name for p in raw.iterdir()) == ["ood.parquet", "opmax.parquet", "reask.parquet", "stream.json", "test.parquet", "train.parquet"]
    meta = json.loads((repo / "data/igsm_demo/tokens/meta.json").read_text())
    assert meta["world"] == "igsm" and meta["units"] == "names" and meta["windows"]["train"] > 0
    evaluate = json.loads((repo / "metrics/igsm_demo/detail/evaluate.json").read_text())
    for eval_set in ("test", "opmax", "ood", "reask"):
        assert set(evaluate[eval_set]) == {"greedy", "beam2"}
        assert evaluate[eval_set]["greedy"]["n"] == 3
    assert evaluate["control"]["greedy"]["n"] == 3
    forced = evaluate["teacher_forced"]
    assert set(forced) == {"test", "opmax", "ood", "reask", "control"}
    for found in forced.values():
        assert found["problems"] == 3 and found["steps"] >= 3
        assert sum(found["next_param"].values()) == pytest.approx(1.0)
        assert sum(c["n"] for c in found["parts"].values()) >= 3
    probe = json.loads((repo / "metrics/igsm_demo/detail/probe.json").read_text())
    assert {"nece_trained", "nece_control", "can_next_trained", "nece_majority"} <= set(probe)
    assert sorted(p.name for p in (repo / "metrics/igsm_demo").rglob("*")) == sorted(  # no attention placeholders
        ["detail", "evaluate.json", "evaluate.json", "loss.csv", "probe", "probe.csv", "probe.json", "probe.json", "train.json",
         "train.json"])
    # reask accuracy within and beyond the trained op range, the ranges counted from the reask file's first 3 problems
    max_op = tiny_igsm_params()["datasets"]["igsm_demo"]["generate"]["max_op"]
    ops = pl.read_parquet(raw / "reask.parquet")["op"].head(3).to_list()
    ranges = {"op_le_max": sum(op <= max_op for op in ops), "op_gt_max": sum(op > max_op for op in ops)}
    for d in ("greedy", "beam2"):
        split = evaluate["reask"][d]["by_op_range"]
        assert split["max_op"] == max_op and {r: split[r]["n"] for r in ranges} == ranges
    assert set(json.loads((repo / "metrics/igsm_demo/evaluate.json").read_text())) == {
        f"{s}_{d}" for s in ("test", "opmax", "ood", "reask") for d in ("greedy", "beam2")} | {"control_greedy", "tf_test_next_param_valid"} | {
        f"reask_{r}_{d}" for r, n in ranges.items() if n for d in ("greedy", "beam2")}
    reports = repo / "reports"
    assert (reports / "igsm_igsm_demo.png").is_file() and (reports / "vprobe_igsm_demo.png").is_file()
    assert (reports / "igsm_steps_igsm_demo.png").is_file()
    summary = (reports / "summary.md").read_text()
    assert "## iGSM: full-solution accuracy" in summary and "## iGSM: teacher-forced steps" in summary
    check_generations(repo, evaluate)


def check_generations(repo: Path, evaluate: dict) -> None:
    """generations/igsm_demo/evaluate.parquet: a row per problem solved (each eval set and decoding, the control);
    re-judged whole against the problem at its index, the saved solutions give the saved verdicts, and the
    metrics' accuracies."""
    import polars as pl

    import generations
    from physlm.worlds.igsm.frames import load_problems
    from physlm.worlds.igsm.judge import judge
    from physlm.worlds.igsm.text import igsm_prompt, parse_generation

    frame = generations.read(repo, "igsm_demo", {"decoding": pl.String, "op": pl.Int64, "answer": pl.Int64,
                                                 "answer_correct": pl.Boolean})
    assert frame.height == 4 * 3 * 2 + 3
    problems = {s: load_problems(repo / f"data/igsm_demo/raw/{s}.parquet") for s in ("test", "opmax", "ood", "reask")}

    def rejudged(row: dict) -> bool:
        problem = problems["test" if row["set"] == "control" else row["set"]][row["index"]]
        assert row["prompt"] == igsm_prompt(problem.problem) and (row["op"], row["answer"]) == (problem.op, problem.answer)
        return row["output"] is not None and judge(problem, *parse_generation(row["output"])).correct

    generations.rejudge(frame, rejudged)
    generations.matches_metrics(frame, evaluate, ("set", "decoding"), "accuracy", "n", {"test", "opmax", "ood", "reask", "control"})


def test_igsm_bad_input_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    repo = tiny_igsm(tmp_path, max_edge=3)  # below (max_layers - 1) * max_items
    proc = run("generate", repo)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert "datasets.igsm_demo.generate" in proc.stderr and "max_edge" in proc.stderr
    assert not (repo / "data").exists()
    repo = tiny_igsm(tmp_path)
    assert run("generate", repo).returncode == 0
    (repo / "data/igsm_demo/raw/train.parquet").write_bytes(b"PAR1 not parquet")
    proc = run("tokenize", repo)
    assert proc.returncode == 1 and "train.parquet" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (repo / "data/igsm_demo/tokens").exists()
