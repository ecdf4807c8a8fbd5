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
    assert set(after["datasets"]) == {f"p1_cfg3{g}" for g in "bihgf"}
    assert all(d["tokenize"] == {"context": 512, "pack": "stream"} for d in after["datasets"].values())
    assert set(after["studies"]) == {f"p1_cfg3{g}_rot" for g in "bihgf"} | {f"p1_cfg3f_{v}" for v in ("abs", "rel", "pos", "uni")}
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
    assert set(after["studies"]) == {"p1_cfg3b_rot", "p1_cfg3b_uni", "other"}
    assert set(after["datasets"]) == {"p1_cfg3b"}


@pytest.mark.parametrize("args", [["--grammars", "cfg3zz"], ["--variants", "sparse"]])
def test_bad_choices_change_nothing(tmp_path: Path, args: list[str]) -> None:
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    proc = subprocess.run([sys.executable, "-m", "physlm.presets", "part1-paper", "--params", str(path), *args],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0 and "error: unknown" in proc.stderr
    assert path.read_bytes() == (ROOT / "params.yaml").read_bytes()
