"""The paper-scale switches: one command rewrites params.yaml to a paper's settings (Part 1, iGSM, bioS), keeps
comments and the other worlds' entries, validates, and shows up as a params diff."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from physlm.config import SCOPE, entry_names, load_stage, read_params
from physlm.worlds.cfg.presets import LR_SWEEP
from physlm.presets import main

ROOT = Path(__file__).resolve().parents[1]



def assert_every_stage_validates(path: Path) -> None:
    params = read_params(path)
    for stage, scope in SCOPE.items():
        for name in entry_names(params, scope) if scope else [""]:
            load_stage(stage, name, path)

def test_part1_paper_rewrites_params(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    before = yaml.safe_load(path.read_text())
    main(["part1-paper", "--params", str(path)])
    text = path.read_text()
    after = yaml.safe_load(text)
    assert "# physlm parameters" in text and "# transformer blocks" in text  # comments survive
    assert after["model"] | {} == before["model"] | {"depth": 12, "width": 768, "heads": 12, "pos": "rot"}
    t = after["train"]
    assert (t["steps"], t["batch_size"], t["beta1"], t["beta2"], t["weight_decay"], t["warmup_steps"], t["decay"], t["min_lr_ratio"]) == \
        (100_000, 96, 0.9, 0.98, 0.1, 0, "linear", 0.0)
    assert t["lr"] in LR_SWEEP
    cfg_datasets = {n for n, d in after["datasets"].items() if d["world"] == "cfg"}
    assert cfg_datasets == {f"p1_cfg3{g}" for g in "bihgf"}
    assert all(after["datasets"][d]["tokenize"] == {"context": 512, "pack": "stream"} for d in cfg_datasets)
    assert {n for n, s in after["studies"].items() if s["world"] == "cfg"} == \
        {f"p1_cfg3{g}_rot" for g in "bihgf"} | {f"p1_cfg3f_{v}" for v in ("abs", "rel", "pos", "uni")}
    others = {n for n, d in before["datasets"].items() if d["world"] != "cfg"}
    assert {n for n, d in after["datasets"].items() if d["world"] != "cfg"} == others  # other worlds untouched
    params = read_params(path)
    for stage, scope in SCOPE.items():  # every stage of every new entry validates
        for name in entry_names(params, scope) if scope else [""]:
            load_stage(stage, name, path)


def test_other_worlds_are_kept_and_choices_respected(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["studies"]["other"] = {"world": "elsewhere", "data": "x"}
    path.write_text(yaml.safe_dump(params))
    main(["part1-paper", "--params", str(path), "--grammars", "cfg3b", "--variants", "uni", "--variant-grammar", "cfg3b"])
    after = yaml.safe_load(path.read_text())
    kept = {n for n, s in params["studies"].items() if s["world"] != "cfg"}
    assert set(after["studies"]) == {"p1_cfg3b_rot", "p1_cfg3b_uni"} | kept
    assert {n for n, d in after["datasets"].items() if d["world"] == "cfg"} == {"p1_cfg3b"}


@pytest.mark.parametrize("args", [["--grammars", "cfg3zz"], ["--variants", "sparse"]])
def test_bad_choices_change_nothing(tmp_path: Path, args: list[str]) -> None:
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    proc = subprocess.run([sys.executable, "-m", "physlm.presets", "part1-paper", "--params", str(path), *args],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0 and "error: unknown" in proc.stderr
    assert path.read_bytes() == (ROOT / "params.yaml").read_bytes()


@pytest.mark.parametrize("level", ["med", "hard"])
def test_igsm_paper_rewrites_params(tmp_path: Path, level: str) -> None:
    from physlm.worlds.igsm.presets import IGSM_LEVELS, SIZES

    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    before = yaml.safe_load(path.read_text())
    main([f"igsm-{level}", "--params", str(path), "--formats", "pq,qp", "--depth-width", "size1,size2"])
    after = yaml.safe_load(path.read_text())
    assert after["model"] == before["model"] and after["train"] == before["train"]  # recipes live in the studies
    igsm = {n: d for n, d in after["datasets"].items() if d["world"] == "igsm"}
    assert set(igsm) == {f"p21_{level}_pq", f"p21_{level}_qp"}
    g = igsm[f"p21_{level}_pq"]["generate"]
    assert (g["max_op"], g["max_edge"]) == ((15, 20) if level == "med" else (21, 28))
    studies = {n: s for n, s in after["studies"].items() if s["world"] == "igsm"}
    assert len(studies) == 2 + 5 + 5 - 1  # GPT2-12-12 per format, plus both size lists (size-1 holds 12-12 already)
    main_study = studies[f"p21_{level}_pq"]
    assert (main_study["model"]["depth"], main_study["model"]["width"], main_study["model"]["heads"]) == (12, 768, 12)
    assert main_study["train"]["batch_size"] == IGSM_LEVELS[level]["train"]["batch_size"]
    assert {(s["model"]["depth"], s["model"]["heads"]) for s in studies.values()} == {pair for size in SIZES.values() for pair in size}
    assert {n for n, d in after["datasets"].items() if d["world"] == "cfg"} == \
        {n for n, d in before["datasets"].items() if d["world"] == "cfg"}  # Part 1 untouched
    assert_every_stage_validates(path)


def test_igsm_paper_rejects_unknown_choices(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    with pytest.raises(SystemExit, match="unknown format"):
        main(["igsm-med", "--params", str(path), "--formats", "pq,xx"])
    with pytest.raises(SystemExit, match="size3"):
        main(["igsm-med", "--params", str(path), "--depth-width", "size3"])


def test_bio_paper_rewrites_params(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    before = yaml.safe_load(path.read_text())
    main(["bio-paper", "--params", str(path)])
    text = path.read_text()
    after = yaml.safe_load(text)
    assert "# P- and Q-probing" in text  # comments survive
    assert "beams: [1, 4]            # greedy" in text  # an unchanged value keeps its layout
    assert "eps: 1.0e-6" in text and "lr: 3.0e-4" in text  # floats as params.yaml spells them (1e-06 is a string to PyYAML)
    assert after["model"] == before["model"] and after["train"] == before["train"]  # recipes live in the studies
    bio = {n: d for n, d in after["datasets"].items() if d["world"] == "bio"}
    assert set(bio) == {"p31_single", "p31_aug", "p31_celebrity"}
    for d in bio.values():
        g = d["generate"]
        assert (g["people"], g["text"], g["pools"]) == (100_000, "bioS", {})  # the SPEC's full pools
        assert d["tokenize"] == {"context": 512, "pack": "sentences", "units": "words"}
    assert [bio[n]["generate"]["variant"] for n in ("p31_single", "p31_aug")] == ["single", "multi5+permute"]
    celeb = bio["p31_celebrity"]["generate"]
    assert (celeb["variant"], celeb["celebrities"], celeb["celebrity_variant"]) == ("single+permute", 100_000, "multi5+permute")
    assert bio["p31_single"]["generate"]["celebrities"] == 0
    studies = {n: s for n, s in after["studies"].items() if s["world"] == "bio"}
    assert {n: s["data"] for n, s in studies.items()} == {"p31_single": "p31_single", "p31_aug": "p31_aug", "p31_lora": "p31_aug",
                                                          "p31_mixed": "p31_single", "p31_celebrity": "p31_celebrity"}
    for s in studies.values():
        m, t = s["model"], s["train"]
        assert (m["depth"], m["heads"], m["width"], m["pos"]) == (12, 12, 768, "rot")
        assert (t["steps"], t["batch_size"], t["lr"], t["min_lr_ratio"], t["warmup_steps"], t["decay"], t["weight_decay"], t["eps"]) == \
            (80_000, 96, 1.0e-3, 0.1, 1000, "cosine", 0.1, 1.0e-6)
    full = {"steps": 50_000, "lr": 3.0e-4, "weight_decay": 0.01, "batch_size": 48}
    for name in ("p31_single", "p31_aug", "p31_celebrity"):
        assert studies[name]["train"]["finetune"] == full and "mix" not in studies[name]["train"]
    assert studies["p31_lora"]["train"]["finetune"] == full | {"lora": {"rank_qv": 8, "rank_emb": 128, "alpha": 4.0}}
    assert studies["p31_mixed"]["train"]["mix"] == 0.8 and "finetune" not in studies["p31_mixed"]["train"]
    p = after["probe"]["bio"]
    assert (p["p_steps"], p["p_rank"], p["q_steps"], p["q_rank"], p["lr"], p["weight_decay"]) == (30_000, 2, 30_000, 16, 1.0e-3, 0.3)
    assert after["evaluate"]["bio"]["beams"] == [1, 4]
    assert after["probe"]["igsm"] == before["probe"]["igsm"] and after["evaluate"]["cfg"] == before["evaluate"]["cfg"]
    for scope in ("datasets", "studies"):  # other worlds untouched
        assert {n: e for n, e in after[scope].items() if e["world"] != "bio"} == \
            {n: e for n, e in before[scope].items() if e["world"] != "bio"}
    assert_every_stage_validates(path)


def test_bio_paper_regime_subset(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    main(["bio-paper", "--params", str(path), "--regimes", "mixed,lora", "--people", "2000"])
    after = yaml.safe_load(path.read_text())
    assert {n for n, s in after["studies"].items() if s["world"] == "bio"} == {"p31_mixed", "p31_lora"}
    bio = {n: d for n, d in after["datasets"].items() if d["world"] == "bio"}
    assert set(bio) == {"p31_single", "p31_aug"}  # only the datasets those regimes train on
    assert {d["generate"]["people"] for d in bio.values()} == {2000}


@pytest.mark.parametrize(("args", "message"), [(["--regimes", "single,celeb"], "error: unknown regime(s) celeb;"),
                                               (["--regimes", ""], "error: unknown regime(s) (none given);"),
                                               (["--people", "1"], "error: params.yaml: datasets.p31_single.generate.people:")])
def test_bio_paper_bad_choices_change_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    proc = subprocess.run([sys.executable, "-m", "physlm.presets", "bio-paper", "--params", str(path), *args],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0 and proc.stderr.startswith(message) and proc.stderr.count("\n") == 1  # one line
    assert path.read_bytes() == (ROOT / "params.yaml").read_bytes() and not list(tmp_path.glob("*.tmp"))


def test_suite_adds_every_worlds_extra_studies(tmp_path: Path) -> None:
    """`suite` adds the worlds' SUITE entries to the showcase; the grammar world's are the studies the showcase
    used to run (the same params), every stage validates, the showcase is untouched, and a second run is a no-op."""
    import importlib

    from physlm import worlds

    suites = [getattr(importlib.import_module(f"physlm.worlds.{w}.presets"), "SUITE", {}) for w in worlds.names()
              if worlds.get(w).takes_part("presets")]
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    before = yaml.safe_load(path.read_text())
    main(["suite", "--params", str(path)])
    after = yaml.safe_load(path.read_text())
    assert "# physlm parameters" in path.read_text() and "&id" not in path.read_text()  # comments, no YAML anchors
    for scope in ("datasets", "studies"):
        assert {k: after[scope][k] for k in before[scope]} == before[scope]
        assert set(after[scope]) == set(before[scope]).union(*(set(suite.get(scope, {})) for suite in suites))
    assert after["studies"]["cfg_abs"] == {"world": "cfg", "data": "cfg_small", "model": {"pos": "abs"},
                                           "train": {"steps": 300, "batch_size": 16, "micro_batch_size": 16},
                                           "probe": {"control": False, "multihead": {"steps": 0}, "sentences": 150,
                                                     "attention_sentences": 50},
                                           "evaluate": {"samples": 100, "prefix_samples": 100, "prefix": 20,
                                                        "control_samples": 0, "kl_sentences": 50, "robust": {"sentences": 0}}}
    assert_every_stage_validates(path)
    main(["suite", "--params", str(path)])
    assert yaml.safe_load(path.read_text()) == after
