"""The paper-scale switch: one command rewrites params.yaml to Part 1's paper settings, keeps comments and
the other worlds' entries, validates, and shows up as a params diff."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from physlm.config import SCOPE, entry_names, load_stage, read_params
from physlm.presets import LR_SWEEP, main

ROOT = Path(__file__).resolve().parents[1]


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
    from physlm.presets import IGSM_LEVELS, SIZES

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
    params = read_params(path)
    for stage, scope in SCOPE.items():
        for name in entry_names(params, scope) if scope else [""]:
            load_stage(stage, name, path)


def test_igsm_paper_rejects_unknown_choices(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    with pytest.raises(SystemExit, match="unknown format"):
        main(["igsm-med", "--params", str(path), "--formats", "pq,xx"])
    with pytest.raises(SystemExit, match="size3"):
        main(["igsm-med", "--params", str(path), "--depth-width", "size3"])
