"""benchmarks/gpu_igsm.py, the prepared device run for iGSM: at toy sizes on the CPU, both phases run every
stage they name through the pipeline's own stage modules and write what they measured; the step count
follows the calibrated rate within its bounds; a failing phase is recorded; an unknown phase stops before
anything runs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_igsm.py"


@pytest.fixture(scope="module")
def gpu_igsm():
    spec = importlib.util.spec_from_file_location("gpu_igsm", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_steps_follow_the_calibrated_rate_within_bounds(gpu_igsm) -> None:
    assert gpu_igsm.steps_for(100.0, 1000.0, 500, 10, 10**6) == 200
    assert gpu_igsm.steps_for(1.0, 1000.0, 500, 10, 10**6) == 10
    assert gpu_igsm.steps_for(10**4, 1000.0, 5, 10, 300) == 300


def test_unknown_phase_stops_before_any_stage(gpu_igsm, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        gpu_igsm.main(["--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--phases", "demo,hard"])
    assert "unknown phase hard" in capsys.readouterr().err
    assert not (tmp_path / "work").exists() and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_smoke_run_of_both_phases(gpu_igsm, tmp_path: Path) -> None:
    out = tmp_path / "out"
    gpu_igsm.main(["--smoke", "--depth", "2", "--out", str(out), "--work", str(tmp_path / "work")])
    demo = json.loads((out / "demo.json").read_text())
    assert demo["settings"]["study"]["model"] == {"canon": "AC", "depth": 2}  # the demo's model, one size changed
    assert set(demo["stage_s"]) == {"generate", "tokenize", "train_calibration", "train", "evaluate", "probe"}
    assert demo["train"]["tokens_seen"] == demo["steps"] * 4 * 256  # smoke batch 4 of the demo's 256 tokens
    assert demo["settings"]["study"]["model"]["canon"] == "AC" and demo["settings"]["study"]["train"]["doc_mask"]
    assert {f"{p}_{m}" for p in ("nece", "can_next") for m in ("trained", "control", "majority")} <= set(demo["probe"])
    assert set(demo["evaluate"]) == {"test", "opmax", "ood", "reask", "control"}
    assert 0 <= demo["teacher_forced_test"]["next_param"]["valid"] <= 1
    med = json.loads((out / "med.json").read_text())
    assert set(med["stage_s"]) == {"generate", "tokenize", "train_calibration", "train", "evaluate"}
    dataset = med["settings"]["dataset"]
    assert dataset["generate"]["max_op"] == 15 and dataset["tokenize"]["context"] == 768
    assert med["train"]["tokens_seen"] == med["steps"] * 2 * 768
    assert set(med["evaluate"]) == {"test", "opmax", "ood", "reask"}
    for phase in ("demo", "med"):
        assert (out / f"{phase}_train.log").stat().st_size > 0


@pytest.mark.slow
def test_a_failing_phase_is_recorded_and_named(gpu_igsm, tmp_path: Path) -> None:
    """A calibration that fails with torch.compile on is tried once more without it; when that fails too,
    the phase's JSON keeps what was measured and says why, and the exit names the phase."""
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match="phase demo failed"):
        gpu_igsm.main(["--smoke", "--calib-steps", "0", "--phases", "demo", "--out", str(out),
                       "--work", str(tmp_path / "work")])
    demo = json.loads((out / "demo.json").read_text())
    assert "train@calib failed" in demo["error"] and "steps" in demo["error"]
    assert "train@calib failed" in demo["compile_failed"]
    assert (out / "demo_calibration_nocompile.log").exists()
    assert set(demo["stage_s"]) == {"generate", "tokenize"}
