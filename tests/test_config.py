"""params.yaml and dvc.yaml agree with physlm.config, and bad params stop a stage with one line naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from physlm import worlds
from physlm.config import FIELDS, SCOPE, declared_params, entry_names, load_stage, merge, read_params, stage_model
from physlm.errors import ParamsError

ROOT = Path(__file__).resolve().parents[1]


def dvc_stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_every_stage_declares_exactly_what_its_model_reads() -> None:
    stages = dvc_stages()
    assert stages.pop("validate")["params"] == [{"params.yaml": None}]  # the validate stage reads everything
    assert set(stages) == set(FIELDS)
    for name, stage in stages.items():
        body = stage.get("do", stage)
        assert set(body["params"]) == declared_params(name), name


def test_stage_models_cover_their_fields() -> None:
    for name, scope in SCOPE.items():
        for world in worlds.names() if scope else [""]:
            assert list(stage_model(name, world).model_fields) == list(FIELDS[name]), (name, world)


def test_every_stage_of_every_dataset_and_study_validates() -> None:
    params = read_params(ROOT / "params.yaml")
    for stage, scope in SCOPE.items():
        for name in entry_names(params, scope) if scope else [""]:
            load_stage(stage, name, ROOT / "params.yaml")


def write_params(tmp_path: Path, edit) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    edit(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.mark.parametrize(
    ("stage", "edit", "key"),
    [
        ("train", lambda p: p["model"].update(depth=0), "model.depth"),
        ("train", lambda p: p["studies"]["cfg_demo"]["model"].update(depth=-1), "studies.cfg_demo.model.depth"),
        ("train", lambda p: p["studies"]["cfg_demo"]["model"].update(dpeth=3), "studies.cfg_demo.model.dpeth"),
        ("train", lambda p: p["train"].update(lr="fast"), "train.lr"),
        ("train", lambda p: p["studies"]["cfg_demo"]["model"].update(canon="ABE"), "studies.cfg_demo.model.canon"),
        ("train", lambda p: p["model"].update(canon_kernel=0), "model.canon_kernel"),
        ("train", lambda p: p["model"].update(block="mamba"), "model.block"),
        ("train", lambda p: p["model"].update(rope_dim=-2), "model.rope_dim"),
        ("train", lambda p: p["model"].update(rope_dim=3), "studies.cfg_demo.model"),  # odd: checked with width, heads
        ("train", lambda p: p["model"].update(pos="nope", rope_dim=8), "studies.cfg_demo.model"),  # rotary only
        ("train", lambda p: p["model"].update(canon_residual="maybe"), "model.canon_residual"),
        ("train", lambda p: p["train"].update(decay="exponential"), "train.decay"),
        ("generate", lambda p: p["datasets"]["cfg_demo"]["generate"].update(train_sentences=0), "datasets.cfg_demo.generate.train_sentences"),
        ("generate", lambda p: p["datasets"]["cfg_demo"]["generate"].update(extra=1), "datasets.cfg_demo.generate.extra"),
        ("tokenize", lambda p: p["datasets"]["cfg_demo"]["tokenize"].update(context=2), "datasets.cfg_demo.tokenize.context"),
        ("evaluate", lambda p: p["evaluate"]["cfg"].update(temperature=-1.0), "evaluate.cfg.temperature"),
        ("probe", lambda p: p["studies"]["cfg_demo"]["probe"].update(train_fraction=1.5), "studies.cfg_demo.probe.train_fraction"),
        ("generate", lambda p: p.pop("seed"), "seed"),
        ("generate", lambda p: p["datasets"]["cfg_demo"].update(world="moon"), "datasets.cfg_demo.world"),
        ("train", lambda p: p["studies"]["cfg_demo"].update(data="nope"), "studies.cfg_demo.data"),
        ("train", lambda p: p["studies"]["cfg_demo"].update(modle={}), "studies.cfg_demo.modle"),
        ("probe", lambda p: p["studies"]["cfg_demo"].pop("data"), "studies.cfg_demo.data"),
    ],
)
def test_bad_params_name_the_key(tmp_path: Path, stage: str, edit, key: str) -> None:
    path = write_params(tmp_path, edit)
    with pytest.raises(ParamsError) as err:
        load_stage(stage, "cfg_demo", path)
    message = str(err.value)
    assert "\n" not in message
    assert f" {key}" in message or f"'{key}'" in message, message


def test_batch_must_divide() -> None:
    with pytest.raises(ParamsError, match="micro_batch_size"):
        load_stage("train", "cfg_demo", _tmp_params(lambda p: p["train"].update(batch_size=30, micro_batch_size=16)))


def _tmp_params(edit) -> Path:
    import tempfile

    return write_params(Path(tempfile.mkdtemp()), edit)


def test_unknown_study() -> None:
    with pytest.raises(ParamsError, match="unknown study 'nope'"):
        load_stage("train", "nope", ROOT / "params.yaml")


def test_merge_is_deep() -> None:
    assert merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 5}}) == {"a": {"b": 5, "c": 2}, "d": 3}


def test_study_override_wins(tmp_path: Path) -> None:
    path = write_params(tmp_path, lambda p: p["studies"]["cfg_demo"]["model"].update(depth=2))
    assert load_stage("train", "cfg_demo", path).model.depth == 2
    assert load_stage("train", "cfg_demo", ROOT / "params.yaml").model.depth == read_params(ROOT / "params.yaml")["model"]["depth"]


def test_stage_script_prints_one_line_and_writes_nothing(tmp_path: Path) -> None:
    write_params(tmp_path, lambda p: p["datasets"]["cfg_demo"]["generate"].update(grammar="cfg3zz"))
    proc = subprocess.run([sys.executable, "-m", "stages.generate", "cfg_demo"], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cfg3zz" in lines[0], proc.stderr
    assert not (tmp_path / "data").exists()


def test_model_params_are_gpt_config_fields_with_the_same_defaults() -> None:
    """stages/train.py passes the `model` section to GPTConfig as keywords: every key must be a field, and the
    keys params.yaml may leave out (the Part 4.1 options) default to what GPTConfig defaults to."""
    import dataclasses

    from physlm.model import BLOCKS, POSITIONS, GPTConfig
    from physlm.params import ModelParams

    fields = {f.name: f.default for f in dataclasses.fields(GPTConfig)}
    assert set(ModelParams.model_fields) <= set(fields)
    for name, info in ModelParams.model_fields.items():
        if not info.is_required():
            assert info.default == fields[name], name
    literal = {"block": BLOCKS, "pos": POSITIONS}
    for name, options in literal.items():
        assert set(ModelParams.model_fields[name].annotation.__args__) == set(options), name
