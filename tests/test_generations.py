"""The evaluate stage's generations table (generations/<study>/evaluate.parquet, `physlm.worlds.Evaluated`): the
grammar world's, through the stage scripts at a tiny scale (every other world's is checked in its own stage
test with tests/generations.py: test_igsm_stages, test_bio_stages, test_depo, test_brevo, test_mano,
test_capacity_stages; the toy world's and the DVC outputs in test_toy_world and test_pipeline), and the stage's
refusal of a malformed table, before it writes anything."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from conftest import tiny_params

import generations
import stages.evaluate
import stages.generate
import stages.tokenize
import stages.train
from physlm import worlds
from physlm.cli import run_stage
from physlm.worlds import generations_table


def test_check_generations_names_the_fault() -> None:
    good = generations_table([{"set": "test", "index": 0, "prompt": "a", "output": "b", "verdict": True, "error": None}], {})
    stages.evaluate.check_generations("toy", good)
    stages.evaluate.check_generations("toy", good.drop("output", "verdict", "error"))  # a world that generates nothing
    for bad, needle in ((good.drop("prompt"), "prompt (missing, not String)"), (good.drop("error"), "error (missing"),
                        (good.with_columns(pl.col("index").cast(pl.Int32)), "index (Int32, not Int64)"),
                        (good.with_columns(pl.col("verdict").cast(pl.String)), "verdict (String, not Boolean)"),
                        (good.clear(), "has no rows")):
        with pytest.raises(ValueError, match="world 'toy': its evaluate step's generations table") as err:
            stages.evaluate.check_generations("toy", bad)
        assert needle in str(err.value), err.value


def test_cfg_generations_rejudge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread) -> None:
    """cut0, cut<prefix> and the control's cut0 samples, one row each; the prompt of a prefix row is its test
    sentence's head; the grammar's judge on prompt + output gives the saved verdict, and the metrics' accuracies.
    A world's malformed table stops the stage before it writes anything."""
    from physlm.worlds.cfg.language import load_language

    monkeypatch.setenv("PHYSLM_TRACKING", "0")
    monkeypatch.chdir(tmp_path)
    params = tiny_params()
    params["studies"] = {"cfg_demo": params["studies"]["cfg_demo"]}
    params["datasets"]["cfg_demo"]["generate"]["workers"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for stage in ("generate", "tokenize", "train"):
        run_stage(stage, getattr(stages, stage).main, ["cfg_demo"])

    step = worlds.get("cfg").step("evaluate")
    real = step.evaluate

    def broken(*args):  # a world whose table lacks a column
        found = real(*args)
        return dataclasses.replace(found, generations=found.generations.drop("error"))

    monkeypatch.setattr(step, "evaluate", broken)
    with pytest.raises(ValueError, match="error \\(missing"):
        run_stage("evaluate", stages.evaluate.main, ["cfg_demo"])
    assert not Path("generations").exists() and not Path("metrics/cfg_demo/evaluate.json").exists()
    monkeypatch.setattr(step, "evaluate", real)
    run_stage("evaluate", stages.evaluate.main, ["cfg_demo"])

    e = params["evaluate"]["cfg"]
    frame = generations.read(tmp_path, "cfg_demo", {})
    assert frame.height == e["samples"] + e["prefix_samples"] + e["control_samples"]
    test = pl.read_parquet("data/cfg_demo/raw/test.parquet")["tokens"].to_list()
    judge = load_language(Path("data/cfg_demo/raw")).judge()
    ids = lambda text: [int(t) for t in text.split()]  # noqa: E731

    def rejudged(row: dict) -> bool:
        head = ids(row["prompt"])
        assert head == (test[row["index"]][: e["prefix"]] if row["set"] == f"cut{e['prefix']}" else [])
        return row["output"] is not None and len(head + ids(row["output"])) > 0 and judge(head + ids(row["output"]))

    generations.rejudge(frame, rejudged)
    detail = generations.detail(tmp_path, "cfg_demo")
    generations.matches_metrics(frame, detail, ("set",), "accuracy", "n", {"cut0", f"cut{e['prefix']}", "control_cut0"})
    headline = json.loads(Path("metrics/cfg_demo/evaluate.json").read_text())  # the DVC metrics did not grow
    temperatures = params["evaluate"]["cfg"]["robust"]["temperatures"]
    assert set(headline) == {"cut0_accuracy", f"cut{e['prefix']}_accuracy", "control_cut0_accuracy", "cut0_distinct",
                             "kl_trained", "kl_control", *(f"repaired_T{float(t):g}" for t in temperatures),
                             f"cut{e['prefix']}_prompts_in_train"}  # the held-out figure beside the prompts' accuracy
