"""Seeds as an axis: a study's `train.seed`, seed groups in the report, and the preset helper that writes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_stages import ONE_THREAD, run, setup
from toy_world import WORLD as TOY

from physlm import worlds

from physlm.config import load_stage
from physlm.errors import ParamsError
from physlm.presets import seeded
from physlm.report import seed_groups, seeds_markdown, write_report

STUDY = {"world": "cfg", "data": "d", "model": {}, "train": {"steps": 5}, "probe": {}, "evaluate": {}}


def test_seeded_writes_one_study_per_seed() -> None:
    group = seeded("depo_canon", STUDY, [1, 2, 3])
    assert list(group) == ["depo_canon_s1", "depo_canon_s2", "depo_canon_s3"]
    assert [g["train"] for g in group.values()] == [{"steps": 5, "seed": s} for s in (1, 2, 3)]
    assert STUDY["train"] == {"steps": 5}  # the template is left as it was
    with pytest.raises(ValueError, match="distinct"):
        seeded("x", STUDY, [1, 1])


def test_seed_groups_are_studies_equal_but_for_the_seed() -> None:
    other = {**STUDY, "train": {"steps": 6}}
    studies = {"plain": STUDY, **seeded("a", STUDY, [1, 2]), **seeded("b", other, [1, 2, 3]), "lone_s4": {**other, "model": {"depth": 2}}}
    seeds = {"plain": 0, "a_s1": 1, "a_s2": 2, "b_s1": 1, "b_s2": 2, "b_s3": 3, "lone_s4": 4}
    groups = seed_groups(studies, seeds)
    # plain (the shared seed 0) is a_s1/a_s2's study at another seed: it joins them; the stems differ, so the group
    # takes its first study's name
    assert groups == {"plain": ["plain", "a_s1", "a_s2"], "b": ["b_s1", "b_s2", "b_s3"]}
    # two studies at the same seed are duplicates, not a seed group
    assert seed_groups({"x": STUDY, "y": STUDY}, {"x": 0, "y": 0}) == {}
    assert seed_groups(seeded("a", STUDY, [1, 2]), {"a_s1": 1, "a_s2": 2}) == {"a": ["a_s1", "a_s2"]}


def test_seeds_table_gives_mean_spread_and_every_seed() -> None:
    def metrics(seed: int, acc: float | None) -> dict:
        return {"seed": seed, "headline": {"train": {"final_loss": 1.0 + seed}, "probe": {}, "evaluate": {"acc": acc}}}

    found = {"a_s1": metrics(1, 0.0), "a_s2": metrics(2, 0.5), "a_s3": metrics(3, 1.0)}
    text = seeds_markdown({"a": list(found)}, found)
    assert "### a (3 seeds: a_s1, a_s2, a_s3)" in text
    assert "| evaluate | acc | 0.500 | 0.500 | 0.000 | 1.000 | 0.000 | 0.500 | 1.000 |" in text
    assert "| train | final_loss | 3.000 | 1.000 | 2.000 | 4.000 | 2.000 | 3.000 | 4.000 |" in text
    found["a_s2"]["headline"]["evaluate"]["acc"] = None  # a seed without the number: over the others, shown as a dash
    assert "| evaluate | acc | 0.500 | 0.707 | 0.000 | 1.000 | 0.000 | – | 1.000 |" in seeds_markdown({"a": list(found)}, found)


def test_train_seed_is_validated(tmp_path: Path) -> None:
    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    params["studies"]["cfg_demo"]["train"]["seed"] = 3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert load_stage("train", "cfg_demo", tmp_path / "params.yaml").train.seed == 3
    params["studies"]["cfg_demo"]["train"]["seed"] = -1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=r"studies\.cfg_demo\.train\.seed"):
        load_stage("train", "cfg_demo", tmp_path / "params.yaml")


@pytest.mark.slow  # whole stages, as the other end-to-end runs
def test_a_study_seed_trains_as_the_shared_seed_would_on_the_same_data(tmp_path: Path) -> None:
    """train.seed 5 on data made with seed 0 gives the weights that the shared seed 5 gives on that data, and
    not those of seed 0; the detail file and the report say which seed trained it."""
    repo = setup(tmp_path)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"].update(steps=4, warmup_steps=1, batch_size=4, micro_batch_size=4, eval_every=2, eval_batches=1,
                           checkpoint_every=2, log_every=1)
    params["studies"] = {"cfg_demo": params["studies"]["cfg_demo"]}
    for stage in ("generate", "tokenize"):
        (repo / "params.yaml").write_text(yaml.safe_dump(params))
        assert run(stage, repo).returncode == 0

    def weights(shared: int, own: int | None) -> tuple[bytes, dict]:
        params["seed"] = shared
        params["studies"]["cfg_demo"]["train"] = {} if own is None else {"seed": own}
        (repo / "params.yaml").write_text(yaml.safe_dump(params))
        done = run("train", repo, **ONE_THREAD)
        assert done.returncode == 0, done.stderr
        detail = json.loads((repo / "metrics/cfg_demo/detail/train.json").read_text())
        return (repo / "models/cfg_demo/model.safetensors").read_bytes(), detail

    own, detail = weights(0, 5)
    assert detail["seed"] == 5
    shared, _ = weights(5, None)
    default, detail0 = weights(0, None)
    assert own == shared and own != default and detail0["seed"] == 0


def test_report_has_a_seed_group_section(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    studies = seeded("g", {**STUDY, "world": "toy"}, [1, 2])
    for i, name in enumerate(studies):
        d = metrics / name
        (d / "detail").mkdir(parents=True)
        train = {"final_loss": 1.0 + i, "final_val_loss": 2.0, "tokens_seen": 10, "params": 7, "device": "cpu", "seed": i + 1}
        (d / "detail/train.json").write_text(json.dumps(train))
        (d / "train.json").write_text(json.dumps({"final_loss": 1.0 + i}))
        for stage in ("probe", "evaluate"):
            (d / "detail" / f"{stage}.json").write_text("{}")
            (d / f"{stage}.json").write_text("{}")
        (d / "loss.csv").write_text("step,loss,val_loss\n1,1.0,\n")
    out = tmp_path / "reports"
    out.mkdir()
    worlds.register(TOY)  # the tests-only world (tests/toy_world): its section skips studies without results
    try:
        write_report(studies, metrics, out)
    finally:
        worlds.unregister(TOY.name)
    text = (out / "summary.md").read_text()
    assert "### g (2 seeds: g_s1, g_s2)" in text and "| train | final_loss | 1.500 | 0.707 | 1.000 | 2.000 | 1.000 | 2.000 |" in text
    assert "| g_s1 | 7 | 1 |" in text and "| g_s2 | 7 | 2 |" in text
