"""The biography studies through every stage script at a tiny scale (generate -> tokenize -> train ->
probe -> evaluate -> report) in each regime (pretrain + full finetune, pretrain + LoRA finetune, mixed
training, celebrities), the pieces the stages add (mixed windows, probe inputs from the tables), and
one-line errors on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from conftest import BIO_POOLS, tiny_bio_params

from physlm.worlds.bio import pqprobe
from physlm.bios.text import bio_vocab
from physlm.bios import biographies
from physlm.bios import people as bio
from physlm.worlds.bio.train import mixed_windows

ROOT = Path(__file__).resolve().parents[1]
POOLS = BIO_POOLS


def tiny_bio(tmp_path: Path, **generate) -> Path:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_bio_params(**generate)))
    return tmp_path


def run(stage: str, cwd: Path, name: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PHYSLM_TRACKING": "0"}
    args = [name] if stage != "report" else []
    return subprocess.run([sys.executable, "-m", f"stages.{stage}", *args], cwd=cwd, capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_bio_regimes_run_every_stage(tmp_path: Path) -> None:
    repo = tiny_bio(tmp_path)
    for dataset in ("bio_tiny", "bio_celeb"):
        for stage in ("generate", "tokenize"):
            proc = run(stage, repo, dataset)
            assert proc.returncode == 0, f"{stage}@{dataset}: {proc.stderr[-2000:]}"
    for study in ("bio_ft", "bio_lora", "bio_mix", "bio_celebrity"):
        for stage in ("train", "probe", "evaluate"):
            proc = run(stage, repo, study)
            assert proc.returncode == 0, f"{stage}@{study}: {proc.stderr[-2000:]}"
    assert run("report", repo, "").returncode == 0

    raw = repo / "data/bio_tiny/raw"
    assert sorted(p.name for p in raw.iterdir()) == ["bios.parquet", "people.parquet", "pools.json", "qa.parquet"]
    meta = json.loads((repo / "data/bio_tiny/tokens/meta.json").read_text())
    assert meta["world"] == "bio" and set(meta["windows"]) == {"train", "qa", "test"}
    qa = pl.read_parquet(repo / "data/bio_celeb/raw/qa.parquet")
    assert set(qa.filter(pl.col("split") == "P_train")["person"]) == set(range(24, 36))  # the celebrities only
    assert set(qa.filter(pl.col("split") == "P_test")["person"]) == set(range(24))

    for study in ("bio_ft", "bio_lora", "bio_celebrity"):  # finetuned: the model before finetuning is kept
        assert (repo / f"models/{study}/pretrained/model.safetensors").is_file()
        train = json.loads((repo / f"metrics/{study}/detail/train.json").read_text())
        assert train["finetune"]["tokens_seen"] == 4 * 4 * 64
        evaluate = json.loads((repo / f"metrics/{study}/detail/evaluate.json").read_text())
        assert set(evaluate["pretrained"]) == {"P_train", "P_test"}
        loss = pl.read_csv(repo / f"metrics/{study}/loss.csv")
        assert loss["phase"].to_list() == ["train"] * 2 + ["finetune"] * 4  # logged every 3 of 6 steps, every 1 of 4
        assert loss["step"].to_list() == [3, 6, 7, 8, 9, 10]  # finetuning continues the step count
    lora = json.loads((repo / "metrics/bio_lora/detail/train.json").read_text())["finetune"]["trainable_params"]
    full = json.loads((repo / "metrics/bio_ft/detail/train.json").read_text())["finetune"]["trainable_params"]
    assert 0 < lora < full
    assert not (repo / "models/bio_mix/pretrained").exists()
    evaluate = json.loads((repo / "metrics/bio_mix/detail/evaluate.json").read_text())
    for split in ("P_train", "P_test"):
        assert set(evaluate[split]) == {"greedy", "beam2"} and evaluate[split]["greedy"]["n"] == 4 * 6
    probe = json.loads((repo / "metrics/bio_ft/detail/probe.json").read_text())
    assert {"P_trained_major_whole_p0", "P_control_major_whole_p0", "Q_trained_major_whole", "Q_control_major_whole"} <= set(probe)
    mix = json.loads((repo / "metrics/bio_mix/detail/probe.json").read_text())
    assert not any(k.startswith("P_") for k in mix)
    assert {"Q_trained_L0_major_whole", "Q_trained_major_whole"} <= set(mix)  # layer 0 tagged, the last not
    headline = json.loads((repo / "metrics/bio_ft/probe.json").read_text())  # DVC metrics: per model, the report's means
    assert set(headline) == {f"{p}_{m}" for p in ("P_offset-1", "P_offset0", "Q") for m in ("trained", "control")}
    assert json.loads((repo / "metrics/bio_ft/train.json").read_text()).keys() == {
        "final_loss", "final_val_loss", "tokens_seen", "params", "finetune_final_loss", "finetune_final_val_loss"}
    assert set(json.loads((repo / "metrics/bio_ft/evaluate.json").read_text())) == {
        f"{pre}{s}_{d}" for pre, decodings in (("", ("greedy", "beam2")), ("pretrained_", ("greedy",)))
        for s in ("P_train", "P_test") for d in decodings}
    reports = repo / "reports"
    for figure in ("bio_regimes.png", "bio_regimes_train.png", "pprobe_bio_ft.png", "qprobe_bio_ft.png", "qprobe_bio_mix.png"):
        assert (reports / figure).is_file(), figure
    assert "## Biographies: QA exact-match accuracy" in (reports / "summary.md").read_text()
    check_generations(repo, json.loads((repo / "metrics/bio_ft/detail/evaluate.json").read_text()))


def check_generations(repo: Path, evaluate: dict) -> None:
    """generations/bio_ft/evaluate.parquet: a row per question answered (each split and decoding, and before
    finetuning); the expected value and prompt are the qa.parquet row's, and re-judged (exact match), the saved
    answers give the saved verdicts and the metrics' accuracies."""
    import generations
    from physlm.worlds.bio.evaluate import exact_match
    from physlm.bios.text import qa_prompt

    frame = generations.read(repo, "bio_ft", {"decoding": pl.String, "person": pl.Int64, "attribute": pl.String,
                                             "expected": pl.String, "first_token_correct": pl.Boolean})
    assert frame.height == 2 * 4 * 6 * 2 + 2 * 4 * 6  # splits x people x attributes x (greedy, beam2), and greedy before
    qa = pl.read_parquet(repo / "data/bio_tiny/raw/qa.parquet")
    for row in frame.iter_rows(named=True):
        asked = qa.row(row["index"], named=True)
        assert (asked["value"], asked["person"], asked["attribute"]) == (row["expected"], row["person"], row["attribute"])
        assert row["prompt"] == qa_prompt(asked["question"]) and row["set"].endswith(asked["split"])
    generations.rejudge(frame, lambda row: exact_match(row["output"], row["expected"]))
    sets = {"P_train", "P_test", "pretrained/P_train", "pretrained/P_test"}
    generations.matches_metrics(frame, evaluate, ("set", "decoding"), "accuracy", "n", sets)


def test_bio_bad_input_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    repo = tiny_bio(tmp_path, variant="multi5+permute+couple")
    proc = run("generate", repo, "bio_tiny")
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert "datasets.bio_tiny.generate" in proc.stderr and "couple" in proc.stderr
    assert not (repo / "data").exists()
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["datasets"]["bio_tiny"]["generate"]["variant"] = "single"
    params["studies"]["bio_ft"]["train"]["mix"] = 1.0
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run("train", repo, "bio_ft")
    assert proc.returncode == 1 and "studies.bio_ft.train.mix" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (repo / "models").exists()


def test_mixed_windows_hold_the_qa_share_and_every_qa_window() -> None:
    bios = np.zeros((30, 5), dtype=np.uint16)
    qa = np.arange(1, 8, dtype=np.uint16)[:, None].repeat(5, axis=1)  # 7 distinct QA windows
    mixed = mixed_windows(bios, qa, 0.8, seed=0)
    assert len(mixed) == 30 + 120 and (mixed[:30] == 0).all()
    counts = np.bincount(mixed[30:, 0], minlength=8)[1:]
    assert counts.sum() == 120 and counts.min() >= 120 // 7 and counts.max() <= -(-120 // 7)  # passes: even repeats
    assert (mixed_windows(bios, qa, 0.8, seed=0) == mixed).all()
    assert not (mixed_windows(bios, qa, 0.8, seed=1) == mixed).all()


def test_probe_inputs_read_right_before_each_value() -> None:
    spec = bio.BioSpec(people=12, seed=3, pools=bio.PoolSizes(**POOLS))
    people = bio.make_people(spec)
    table = biographies.people_frame(people)
    bios = biographies.bios_frame(people, spec, bio.parse_variant("single+permute"))
    vocab = bio_vocab(bio.load_pools(bio.PoolSizes(**POOLS)), bio.load_templates(), "words")
    data = pqprobe.bio_inputs(table, bios, vocab, [0, 5, 7])
    assert set(data.tasks) == set(pqprobe.TASKS)
    for b, q, pid in zip(data.biographies, data.queries, (0, 5, 7)):
        person = people[pid]
        assert b.person == q.person == pid and sorted(b.order) == sorted(bio.ATTRIBUTES)
        text = bios.filter((pl.col("person") == pid) & (pl.col("entry") == 0))["text"][0]
        assert b.tokens == (vocab.bos_id, *vocab.encode(text))
        for position, attribute in zip(b.positions, b.order):  # the value's tokens start right after the read position
            value = vocab.encode(person.value(attribute))
            assert list(b.tokens[position + 1 : position + 1 + len(value)]) == value
        assert vocab.decode(q.tokens) == f"<start> {person.full_name} <end>"
        for task, label in zip(pqprobe.TASKS, b.labels):  # the same person, the same classes in both inputs
            assert 0 <= label < data.tasks[task]
        assert b.labels == q.labels
    # a value's class is shared by everyone who has it
    same = [(p.id, p.university) for p in people]
    whole = pqprobe.TASKS.index(pqprobe.Task("university", "whole"))
    all_data = pqprobe.bio_inputs(table, bios, vocab, [p.id for p in people])
    by_value: dict[str, set[int]] = {}
    for (pid, uni), b in zip(same, all_data.biographies):
        by_value.setdefault(uni, set()).add(b.labels[whole])
    assert all(len(v) == 1 for v in by_value.values()) and len({min(v) for v in by_value.values()}) == len(by_value)
