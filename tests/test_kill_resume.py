"""Checkpoints that cannot be read, and a train stage killed for real.

Unit level (tests/test_train.py's tiny setup): a checkpoint that is random bytes, cut off, empty, another torch
file (a dict of other keys, a plain tensor, pickled objects weights_only refuses), or a physlm checkpoint with a
key missing or states that do not fit, is ignored with one warning line naming it (never a traceback, never
torch's advice to load with weights_only=False); training starts from scratch, ends with the weights of a clean
run, and its next checkpoint replaces the bad one.

Stage level (a temporary repo, as tests/test_stages.py sets one up): `python -m stages.train` is SIGKILLed as
soon as its first checkpoint exists, rerun to completion, and must resume and end with a model.safetensors
byte-identical to an uninterrupted run's; a garbage checkpoint placed before the stage runs gives one warning
line and the clean run's weights.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT, tiny_params
from test_train import assert_equal_weights, run

from physlm.train import CHECKPOINT

pytestmark = pytest.mark.usefixtures("one_thread")


class Foreign:
    """An object a weights-only load refuses to unpickle."""


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _without(key: str) -> Callable[[Path], None]:
    def drop(path: Path) -> None:
        state = torch.load(path, weights_only=True)
        del state[key]
        torch.save(state, path)
    return drop


def _reshaped(path: Path) -> None:
    """The right configs, but a model state with one tensor of another shape."""
    state = torch.load(path, weights_only=True)
    name = next(iter(state["model"]))
    state["model"][name] = torch.zeros(3)
    torch.save(state, path)


# Each turns a real checkpoint (of `run(steps=4)`, the same configs) into an unreadable one.
BAD = {
    "random bytes": lambda path: path.write_bytes(os.urandom(4096)),
    "cut off": _cut,
    "empty": lambda path: path.write_bytes(b""),
    "foreign dict": lambda path: torch.save({"x": 1}, path),
    "plain tensor": lambda path: torch.save(torch.ones(3), path),
    "pickled object": lambda path: torch.save(Foreign(), path),
    "plain pickle": lambda path: path.write_bytes(pickle.dumps({"model": 1}, protocol=4)),
    "no rng": _without("rng"),
    "no meta": _without("meta"),
    "other shapes": _reshaped,
}


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory):
    return run(tmp_path_factory.mktemp("clean"), steps=4)


@pytest.mark.parametrize("kind", list(BAD))
def test_unreadable_checkpoint_is_ignored_with_one_warning_line(tmp_path: Path, kind: str, clean) -> None:
    run(tmp_path, steps=4)  # leaves its checkpoint of step 4
    path = tmp_path / CHECKPOINT
    BAD[kind](path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run(tmp_path, steps=4)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    (message,) = messages
    assert "\n" not in message and str(path) in message and "unreadable checkpoint" in message, message
    assert "training from scratch" in message and "weights_only" not in message, message
    assert result.resumed_from is None
    assert_equal_weights(result.model, clean.model)
    assert torch.load(path, weights_only=True)["step"] == 4  # replaced by the run's own checkpoint


def test_stale_and_unreadable_are_told_apart(tmp_path: Path) -> None:
    run(tmp_path, steps=4)
    with pytest.warns(UserWarning, match="other configs or data") as caught:
        run(tmp_path, steps=4, lr=1e-3)
    assert not any("unreadable checkpoint" in str(w.message) for w in caught)


# ------------------------------------------------------------------------------------------------ the stage

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
STEPS = 90  # long enough that the kill, sent once the first checkpoint (step 3) exists, lands mid-run


def stage_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PHYSLM_TRACKING": "0", **ONE_THREAD}


def train_stage(repo: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stages.train", "cfg_demo"], cwd=repo, env=stage_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repo with tiny params (a longer training, a checkpoint every 3 steps) and its generated, tokenized data."""
    repo = tmp_path_factory.mktemp("data")
    params = tiny_params()
    params["train"].update(steps=STEPS, checkpoint_every=3, eval_every=30, log_every=10)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("generate", "tokenize"):
        done = subprocess.run([sys.executable, "-m", f"stages.{stage}", "cfg_demo"], cwd=repo, env=stage_env(),
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
    return repo


def fresh(data: Path, target: Path) -> Path:
    """A copy of the data repo: params and data, nothing trained."""
    shutil.copytree(data, target)
    return target


@pytest.fixture(scope="module")
def straight(data: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The weights of an uninterrupted train stage."""
    repo = fresh(data, tmp_path_factory.mktemp("straight") / "repo")
    code, err = finish(train_stage(repo))
    assert code == 0, err[-2000:]
    return (repo / "models/cfg_demo/model.safetensors").read_bytes()


def resumed_from(repo: Path) -> object:
    """The `resumed_from` the train stage recorded (in whichever of its JSON files holds it)."""
    for path in sorted((repo / "logs").rglob("*.json")) + sorted((repo / "metrics").rglob("*.json")):
        found = json.loads(path.read_text())
        if "resumed_from" in found:
            return found["resumed_from"]
    raise AssertionError("the train stage recorded no resumed_from")


@pytest.mark.slow
def test_train_stage_killed_mid_run_resumes_to_the_same_weights(data: Path, tmp_path: Path, straight: bytes) -> None:
    repo = fresh(data, tmp_path / "repo")
    checkpoint = repo / "checkpoints/cfg_demo" / CHECKPOINT
    proc = train_stage(repo)
    deadline = time.monotonic() + 60
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    code, err = finish(proc)
    assert code == -signal.SIGKILL, f"the stage ended before the kill: {err[-2000:]}"
    assert not (repo / "models").exists()
    step = torch.load(checkpoint, weights_only=True)["step"]
    assert 0 < step < STEPS and step % 3 == 0

    code, err = finish(train_stage(repo))
    assert code == 0, err[-2000:]
    assert "Traceback" not in err and "warning" not in err.lower(), err[-2000:]
    assert resumed_from(repo) == step
    assert (repo / "models/cfg_demo/model.safetensors").read_bytes() == straight
    assert not (repo / "checkpoints/cfg_demo").exists()


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(2048))


def _cut_torch_file(path: Path) -> None:
    torch.save({"model": {"w": torch.ones(1000)}, "step": 3}, path)
    _cut(path)


@pytest.mark.slow
@pytest.mark.parametrize("spoil", [_garbage, _cut_torch_file], ids=["garbage", "cut off"])
def test_train_stage_warns_once_about_a_bad_checkpoint_and_trains_from_scratch(
        data: Path, tmp_path: Path, straight: bytes, spoil: Callable[[Path], None]) -> None:
    repo = fresh(data, tmp_path / "repo")
    checkpoint = repo / "checkpoints/cfg_demo" / CHECKPOINT
    checkpoint.parent.mkdir(parents=True)
    spoil(checkpoint)
    code, err = finish(train_stage(repo))
    assert code == 0, err[-2000:]
    warned = [line for line in err.splitlines() if str(checkpoint.relative_to(repo)) in line]
    assert len(warned) == 1, err[-2000:]
    assert "unreadable checkpoint" in warned[0] and "training from scratch" in warned[0]
    assert "Traceback" not in err and "weights_only" not in err, err[-2000:]
    assert resumed_from(repo) is None
    assert (repo / "models/cfg_demo/model.safetensors").read_bytes() == straight
