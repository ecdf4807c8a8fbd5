"""physlm.load: a study by name from a project directory, its errors, and the codecs.

Here (fast): a project written by hand (conftest.tiny_params' params.yaml, a seeded model saved as the train stage
saves it, the grammar world's tokenizer, metrics files), no training: load by name, the resolved config, the
metrics, the errors (unknown study, not trained, missing metrics, a revision of a directory that is not a git
repository), the codec of each kind of tokenizer.json, the example notebooks' arguments.

In tests/test_pipeline.py (slow, `check_loading` below): the tiny every-world project that test trains with `dvc
repro`: every world's study by name, encode/decode round trips on real training rows, every example notebook
(examples/*.py) run on its world's study with its figure written, a DVC experiment's model through `rev=` (DVC's
file system, the experiment's params and weights), an unknown revision, and a clone of the pushed git remote read
through `rev=` + `remote=` (model and tokenizer fetched from the DVC remote).
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import tiny_params

from physlm.artifacts import save_model
from physlm.errors import ParamsError
from physlm.load import LoadError, codec, example_args, load_study
from physlm.model import GPT, GPTConfig
from physlm.text import TextVocab
from physlm.tokenize import Vocab
from physlm.worlds.cfg.tokenize import cfg_vocab

ROOT = Path(__file__).resolve().parents[1]
WORLDS = ("cfg", "igsm", "bio", "depo", "brevo", "mano", "capacity")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project whose cfg_demo is 'trained' (a seeded random model) and whose cfg_uni is not."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    vocab = cfg_vocab(5)
    tokens = tmp_path / "data" / "cfg_demo" / "tokens"
    tokens.mkdir(parents=True)
    vocab.save(tokens / "tokenizer.json")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=vocab.size, context=16, depth=1, width=16, heads=2))
    (tmp_path / "models" / "cfg_demo").mkdir(parents=True)
    save_model(model, tmp_path / "models" / "cfg_demo")
    metrics = tmp_path / "metrics" / "cfg_demo"
    (metrics / "detail").mkdir(parents=True)
    (metrics / "train.json").write_text(json.dumps({"final_loss": 1.5}))
    (metrics / "detail" / "train.json").write_text(json.dumps({"final_loss": 1.5, "model": {"depth": 1}}))
    (metrics / "loss.csv").write_text("step,loss\n3,2.0\n6,1.5\n")
    return tmp_path


def test_a_study_by_name(project: Path) -> None:
    s = load_study("cfg_demo", root=project)
    torch.manual_seed(0)
    saved = GPT(GPTConfig(vocab_size=7, context=16, depth=1, width=16, heads=2))
    assert not s.model.training and s.device == torch.device("cpu")
    for name, tensor in saved.state_dict().items():
        assert torch.equal(s.model.state_dict()[name], tensor), name
    assert (s.world, s.dataset, s.seed) == ("cfg", "cfg_demo", 0)
    assert set(s.config) == {"generate", "tokenize", "train", "probe", "evaluate"}
    assert s.config["train"].model.depth == 1 and s.config["tokenize"].tokenize.context == 160  # tiny_params' values
    assert s.config["probe"].probe.encoder.steps == 4  # the study's override merged over the shared default
    assert s.metrics == {"train": {"final_loss": 1.5}} and s.detail == {"train": {"final_loss": 1.5, "model": {"depth": 1}}}
    assert s.table("loss") == [{"step": "3", "loss": "2.0"}, {"step": "6", "loss": "1.5"}]
    assert s.paths.model == Path("models/cfg_demo") and s.files == project
    assert s.fetch(s.paths.tokens / "tokenizer.json") == project / "data/cfg_demo/tokens/tokenizer.json"
    assert isinstance(s.tokenizer.encode("1 2").ids, list) and s.tokenizer.encode("1 2 5").ids == [2, 3, 6]
    assert s.encode("1 2 5") == [2, 3, 6] and s.decode([0, 2, 3, 6, 1]) == "<bos> 1 2 5 <eos>"
    assert s.decode(torch.tensor([2, 3])) == "1 2"


def test_errors_are_one_line(project: Path) -> None:
    with pytest.raises(ParamsError, match="unknown study 'nobody'; studies: cfg_demo, cfg_uni"):
        load_study("nobody", root=project)
    with pytest.raises(LoadError, match=r"'cfg_uni' is not trained yet: no models/cfg_uni/model.safetensors; "
                                        r"`dvc repro train@cfg_uni`"):
        load_study("cfg_uni", root=project)
    s = load_study("cfg_demo", root=project)
    with pytest.raises(LoadError, match=r"metrics/cfg_demo/probe.json: not found; `dvc repro probe@cfg_demo` writes it"):
        s.metric("probe")
    with pytest.raises(LoadError, match=r"metrics/cfg_demo/probe/probe.csv: not found; tables: loss"):
        s.table("probe/probe")
    with pytest.raises(LoadError, match=r"data/cfg_demo/raw/train.parquet: not found"):
        s.fetch(s.paths.raw / "train.parquet")
    with pytest.raises(LoadError, match="no params.yaml"):
        load_study("cfg_demo", root=project / "models")
    with pytest.raises(LoadError, match="cannot be opened through DVC .*not a git repository"):
        load_study("cfg_demo", root=project, rev="main")  # a revision needs git (and DVC)
    (project / "data/cfg_demo/tokens/tokenizer.json").unlink()
    with pytest.raises(LoadError, match=r"no data/cfg_demo/tokens/tokenizer.json; `dvc repro tokenize@cfg_demo`"):
        load_study("cfg_demo", root=project)


def test_codec_follows_the_saved_tokenizer(tmp_path: Path) -> None:
    """A text world's tokenizer.json (physlm.text's word split) loads as a TextVocab that writes the text back exactly;
    a symbol world's as whitespace-separated symbols."""
    from physlm.worlds.igsm.tokenize import vocabulary

    vocab = vocabulary("names")
    vocab.save(tmp_path / "text.json")
    text = codec(tmp_path / "text.json")
    assert isinstance(text, TextVocab) and text == vocab
    sentence = "The number of each Thrifty Cart's Baked Beans equals 11."
    ids = text.encode(sentence)
    assert ids == vocab.encode(sentence) and text.decode(ids) == sentence
    cfg_vocab(3).save(tmp_path / "symbols.json")
    symbols = codec(tmp_path / "symbols.json")
    assert type(symbols) is Vocab and symbols.encode("3 1") == [4, 2] and symbols.decode([4, 2]) == "3 1"
    with pytest.raises(Exception, match="symbol '4' is not in the vocabulary"):
        symbols.encode("4")
    (tmp_path / "bad.json").write_text(json.dumps({"pre_tokenizer": {"type": "ByteLevel"}}))
    with pytest.raises(Exception, match="neither physlm's word split"):
        codec(tmp_path / "bad.json")


def test_example_arguments(monkeypatch, tmp_path: Path, project: Path) -> None:
    monkeypatch.chdir(project / "models")  # a notebook runs in examples/: the project is found above it
    assert (example_args("cfg_demo", []).root, example_args("cfg_demo", []).out) == (str(project), str(project / "examples/out"))
    monkeypatch.setenv("PHYSLM_FIGURES", str(tmp_path / "figs"))
    monkeypatch.setenv("PHYSLM_ROOT", "/somewhere")
    args = example_args("cfg_demo", [])
    assert (args.study, args.root, args.rev, args.out) == ("cfg_demo", "/somewhere", None, str(tmp_path / "figs"))
    assert (tmp_path / "figs").is_dir()
    args = example_args("cfg_demo", ["cfg_uni", "--root", "r", "--rev", "exp1", "--out", str(tmp_path / "o")])
    assert (args.study, args.root, args.rev, args.out) == ("cfg_uni", "r", "exp1", str(tmp_path / "o"))


# ---------------------------------------------------------------------------------------------------------
# On the trained every-world project of tests/test_pipeline.py


def first_example(tokens: Path) -> list[int]:
    """The ids of the first whole example (between a <bos> and its <eos>) in the training windows: what training saw."""
    for row in np.load(tokens / "train.npy"):
        row = row.tolist()
        if 0 in row and 1 in row[row.index(0):]:
            start = row.index(0)
            return row[start + 1 : row.index(1, start)]
    raise AssertionError(f"{tokens}: no whole example in a window")


def check_loading(repo: Path, params: dict, figures: Path) -> None:
    """Every world's study by name, encode/decode on real training rows, every example notebook run on it."""
    by_world = {}
    for study, entry in params["studies"].items():
        s = load_study(study, root=repo)
        assert s.world == entry["world"] and s.dataset == entry["data"] and not s.model.training
        assert s.model.cfg.depth == (entry["model"].get("depth") or params["model"]["depth"])
        assert set(s.metrics) == {"train", "probe", "evaluate"} and {"train", "probe", "evaluate"} <= set(s.detail)
        ids = first_example(repo / s.paths.tokens)
        assert s.encode(s.decode(ids)) == ids, study
        by_world.setdefault(s.world, s)
    assert set(by_world) == set(WORLDS)
    import polars as pl

    grammar = by_world["cfg"]  # the raw row the first training example came from encodes to exactly its ids
    terminals = pl.read_parquet(repo / grammar.paths.raw / "train.parquet")["tokens"][0].to_list()
    assert grammar.encode(" ".join(map(str, terminals))) == first_example(repo / grammar.paths.tokens)
    words = by_world["bio"].decode(first_example(repo / by_world["bio"].paths.tokens))
    assert words.endswith(".") and " ." not in words  # the text world's spacing, as its biographies are written
    argv = sys.argv
    try:
        for world, s in by_world.items():
            sys.argv = [f"{world}.py", s.name, "--root", str(repo), "--out", str(figures)]
            runpy.run_path(str(ROOT / "examples" / f"{world}.py"), run_name="__main__")
            assert (figures / f"{world}_{s.name}.png").stat().st_size > 1000, world
    finally:
        sys.argv = argv
        import matplotlib.pyplot as plt

        plt.close("all")


def check_revisions(repo: Path, experiment: str, depth: int) -> None:
    """`experiment` (a DVC experiment of `repo` that set model.depth to `depth` for cfg_demo) through rev=."""
    s = load_study("cfg_demo", root=repo, rev=experiment)
    assert s.model.cfg.depth == depth and s.config["train"].model.depth == depth
    assert s.rev == experiment and s.files != repo and set(s.metrics) == {"train", "probe", "evaluate"}
    assert load_study("cfg_demo", root=repo).model.cfg.depth != depth  # the workspace is the baseline's
    with pytest.raises(LoadError, match="unknown revision 'no-such-exp'"):
        load_study("cfg_demo", root=repo, rev="no-such-exp")


def check_remote(origin: Path, local: Path) -> None:
    """A clone of the bare git remote `origin` at main, the model and tokenizer fetched from its DVC remote `store`:
    the same weights as the workspace copy at `local`."""
    far, near = load_study("igsm_demo", root=str(origin), rev="main", remote="store"), load_study("igsm_demo", root=local)
    for name, tensor in near.model.state_dict().items():
        assert torch.equal(far.model.state_dict()[name], tensor), name
    assert far.vocab == near.vocab and far.metrics == near.metrics
