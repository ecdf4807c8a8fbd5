"""One-line loading of a trained study for notebooks and scripts: `s = load_study("cfg_demo")`.

`load_study(study, root=".", rev=None, remote=None, device="cpu")` returns a `Study`:
- `model`: the physlm GPT of models/STUDY (physlm/artifacts.py), in eval mode, on `device`;
- `config`: the study's resolved params (physlm.config.load_stage), one validated section per stage: `generate` and
  `tokenize` of its dataset, `train`, `probe` and `evaluate` of the study;
- `vocab`, `tokenizer` (the HF `tokenizers` object of data/DATASET/tokens/tokenizer.json), and `encode(text)` /
  `decode(ids)` as the world's tokenize step wrote its training text (module `codec` below);
- `metrics` ({stage: metrics/STUDY/<stage>.json}), `detail` ({name: metrics/STUDY/detail/<name>.json}), `table(name)`
  (a CSV of metrics/STUDY, e.g. `loss` or `probe/probe`), each only for the files that exist; `metric(stage)` says
  which `dvc repro` makes a missing one;
- `paths` (physlm.io.Paths, relative to the project: `paths.model`, `paths.tokens`, `paths.metrics`), `files` (where
  this process read them: under `root`, or a local copy when read at a revision), `fetch(rel)` (any other file of
  the project, e.g. the raw data, the same way), `world`, `dataset`.

`root` is a project directory (params.yaml, models/, data/, metrics/). With `rev` (a git branch, tag or commit, or a
DVC experiment name) or `remote` (a DVC remote's name), every file is read through DVC's Python API
(`dvc.api.DVCFileSystem`, the file system `dvc.api.open` reads through, opened once for all files): params.yaml and
metrics/ from git at that revision, the model and tokenizer from the DVC cache or, when not there, the remote (the
default one unless `remote` names another); `root` may then also be a git URL. Errors are one line (`LoadError`, or
physlm.config's `ParamsError` for an unknown study, which lists the known ones).

Resolution (`resolve`: the study's world, dataset, seed and paths from params.yaml) and the stage headlines
(`headlines`) are shared with the Hugging Face export (physlm/export.py).

Codec: a world writes its tokenizer.json one of two ways (physlm/tokenize.py, physlm/text.py). The symbol worlds'
(cfg, depo, mano, brevo, capacity's bioD) split on white space: a text is its symbols separated by single spaces
(cfg: the terminals `1 3 2 ...`). The text worlds' (igsm, bio, capacity's bioS) split with physlm.text's word
regex, phrase symbols first, and join back without a space before `. , ; ? : 's`: `TextVocab`. The file's
pre-tokenizer says which (`Split` for the text worlds, `WhitespaceSplit` for the symbol worlds), so loading needs
no list of worlds.
"""

from __future__ import annotations

import argparse
import atexit
import csv
import io
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from physlm.artifacts import load_model
from physlm.config import load_stage, lookup, read_params
from physlm.errors import DataError, ParamsError, PhyslmError
from physlm.io import Paths, read_json
from physlm.model import GPT
from physlm.text import TextVocab
from physlm.tokenize import Vocab

STAGES = ("train", "probe", "evaluate")  # metrics/STUDY/<stage>.json: the DVC metrics (flat headline numbers)
DATA_STAGES = ("generate", "tokenize")


class LoadError(PhyslmError):
    """A study cannot be loaded: not trained yet, an unknown revision, a file missing at that revision."""


# ---------------------------------------------------------------------------------------------------------
# Resolution: a study's world, dataset and files (shared with physlm/export.py)


@dataclass(frozen=True)
class Resolved:
    """Where a study's files are, from params.yaml: its world, its dataset, its training seed, and its `Paths`."""

    study: str
    world: str
    dataset: str
    seed: int
    paths: Paths

    @property
    def tokenizer(self) -> Path:
        return self.paths.tokens / "tokenizer.json"


def resolve(study: str, params: dict[str, Any]) -> Resolved:
    """The study's world, dataset, seed and paths; ParamsError naming the known studies if there is no `study`."""
    names = lookup(params, "studies")
    if not isinstance(names, dict) or study not in names:
        known = ", ".join(names) if isinstance(names, dict) else "none"
        raise ParamsError(f"params.yaml: unknown study '{study}'; studies: {known}")
    entry = names[study] if isinstance(names[study], dict) else {}
    train = entry.get("train") or {}
    seed = train.get("seed") if isinstance(train, dict) and train.get("seed") is not None else params.get("seed", 0)
    world, dataset = lookup(params, f"studies.{study}.world"), lookup(params, f"studies.{study}.data")
    return Resolved(study, world, dataset, seed, Paths(study, dataset))


def headlines(metrics_dir: Path) -> dict[str, dict]:
    """{stage: metrics_dir/<stage>.json} for the stages whose file exists."""
    return {stage: read_json(metrics_dir / f"{stage}.json") for stage in STAGES if (metrics_dir / f"{stage}.json").is_file()}


# ---------------------------------------------------------------------------------------------------------
# Reading the files: the workspace, or DVC's file system at a revision


class _Workspace:
    """A project directory's files as they are."""

    def __init__(self, root: Path):
        self.root = root

    def fetch(self, rel: Path) -> Path | None:
        """The file `rel` of the project (None when missing), readable where it is."""
        path = self.root / rel
        return path if path.is_file() else None

    def fetch_dir(self, rel: Path) -> Path:
        return self.root / rel


class _Revision:
    """A project's files at a git revision or DVC experiment, through dvc.api.DVCFileSystem (git-tracked files from
    git, DVC outputs from the cache or a remote), each copied once into a temporary directory removed at exit."""

    def __init__(self, root: str, rev: str | None, remote: str | None):
        from dvc.api import DVCFileSystem
        from dvc.exceptions import DvcException
        from dvc.scm import SCMError

        from dvc.scm import RevError

        try:
            self.fs = DVCFileSystem(root, rev=rev, remote=remote)
            _ = self.fs.repo  # opens the repository at `rev` (DVCFileSystem is lazy)
        except RevError:
            raise LoadError(f"{root}: unknown revision {rev!r}: not a git branch, tag or commit, nor a DVC experiment "
                            "name (`dvc exp list`)") from None
        except (DvcException, SCMError) as err:
            raise LoadError(f"{root}: cannot be opened through DVC ({_first_line(err)})") from None
        self.local = Path(tempfile.mkdtemp(prefix="physlm-load-"))
        atexit.register(shutil.rmtree, self.local, True)

    def fetch(self, rel: Path) -> Path | None:
        target = self.local / rel
        if target.is_file():
            return target
        try:
            if not self.fs.isfile(rel.as_posix()):
                return None
            target.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(rel.as_posix(), str(target))
        except Exception as err:  # DVC raises many kinds (a remote that is unreachable, an object missing from it)
            raise LoadError(f"{rel}: cannot be read through DVC ({_first_line(err)}); `dvc push` it to the remote, "
                            "or name another with remote=") from None
        return target

    def fetch_dir(self, rel: Path) -> Path:
        """The files directly inside `rel` (git-tracked metrics: small), copied; an empty directory if there are none."""
        if self.fs.isdir(rel.as_posix()):
            for entry in self.fs.ls(rel.as_posix(), detail=True):
                if entry["type"] == "file":
                    self.fetch(rel / Path(entry["name"]).name)
        (self.local / rel).mkdir(parents=True, exist_ok=True)
        return self.local / rel


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


# ---------------------------------------------------------------------------------------------------------
# The codec: text <-> ids as the world's training wrote them (module docstring)


def codec(path: Path) -> Vocab:
    """The codec of a saved tokenizer.json: a `TextVocab` for a text world's (a `Split` pre-tokenizer), else the
    whitespace-separated `Vocab` (the symbol worlds'); DataError for a file that is neither."""
    try:
        kind = (json.loads(path.read_text()).get("pre_tokenizer") or {}).get("type")
    except (OSError, ValueError, AttributeError) as err:
        raise DataError(f"{path}: not a readable tokenizer.json ({err})") from None
    if kind == "Split":
        return TextVocab.load(path)
    if kind == "WhitespaceSplit":
        return Vocab.load(path)
    raise DataError(f"{path}: pre-tokenizer {kind!r} is neither physlm's word split (Split) nor WhitespaceSplit")


# ---------------------------------------------------------------------------------------------------------
# The study


@dataclass
class Study:
    """A loaded study (module docstring). `encode` gives the ids of a text without `<bos>`/`<eos>` (the training
    sequence is `<bos> text <eos>`); `decode` renders every id, specials included."""

    name: str
    world: str
    dataset: str
    seed: int
    model: GPT
    config: dict[str, Any]
    vocab: Any  # TextVocab (text worlds) or physlm.tokenize.Vocab
    tokenizer: Any  # tokenizers.Tokenizer
    metrics: dict[str, dict]
    detail: dict[str, dict]
    paths: Paths
    files: Path  # the directory this process read the study's files under (root, or a local copy of a revision)
    rev: str | None = None
    _codec: Any = field(default=None, repr=False)
    _reader: Any = field(default=None, repr=False)

    def fetch(self, rel: str | Path) -> Path:
        """A local path to any file of the project (relative to it, e.g. `s.paths.raw / "test.parquet"`): in the
        workspace, or copied from the revision; LoadError naming the file if there is none."""
        found = self._reader.fetch(Path(rel))
        if found is None:
            raise LoadError(f"{rel}: not found{f' at revision {self.rev!r}' if self.rev else ''}")
        return found

    def encode(self, text: str) -> list[int]:
        return self._codec.encode(text)

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        return self._codec.decode([int(i) for i in ids])

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def metric(self, stage: str) -> dict:
        """metrics/STUDY/<stage>.json; LoadError naming the `dvc repro` that writes it when missing."""
        if stage not in STAGES:
            raise LoadError(f"unknown stage {stage!r}; stages with metrics: {', '.join(STAGES)}")
        if stage not in self.metrics:
            raise LoadError(f"{self.paths.metrics / f'{stage}.json'}: not found; `dvc repro {stage}@{self.name}` writes it")
        return self.metrics[stage]

    def table(self, name: str) -> list[dict[str, str]]:
        """The rows of metrics/STUDY/<name>.csv (`loss`, `probe/probe`, ...), values as strings; LoadError if missing."""
        rel = self.paths.metrics / f"{name}.csv"
        path = self.files / rel
        if not path.is_file():
            tables = sorted(p.relative_to(self.files / self.paths.metrics).with_suffix("").as_posix()
                            for p in (self.files / self.paths.metrics).rglob("*.csv"))
            raise LoadError(f"{rel}: not found; tables: {', '.join(tables) or 'none'}")
        return list(csv.DictReader(io.StringIO(path.read_text())))


def load_study(study: str, root: str | Path = ".", rev: str | None = None, remote: str | None = None,
               device: str | torch.device = "cpu") -> Study:
    """The trained study `study` of the project at `root` (at revision `rev`, through the DVC remote `remote`)."""
    files = _Revision(str(root), rev, remote) if rev is not None or remote is not None else _Workspace(Path(root))
    params_file = files.fetch(Path("params.yaml"))
    if params_file is None:
        raise LoadError(f"{root}: no params.yaml{f' at revision {rev!r}' if rev else ''} (not a physlm project)")
    params = read_params(params_file)
    found = resolve(study, params)
    config = {stage: load_stage(stage, found.dataset, params_file) for stage in DATA_STAGES}
    config |= {stage: load_stage(stage, study, params_file) for stage in STAGES}
    where = f" at revision {rev!r}" if rev else ""
    weights, model_config = files.fetch(found.paths.model / "model.safetensors"), files.fetch(found.paths.model / "config.json")
    if weights is None or model_config is None:
        raise LoadError(f"study {study!r} is not trained yet: no {found.paths.model / 'model.safetensors'}{where}; "
                        f"`dvc repro train@{study}` trains it (or `dvc pull train@{study}` fetches it)")
    tokenizer = files.fetch(found.tokenizer)
    if tokenizer is None:
        raise LoadError(f"no {found.tokenizer}{where}; `dvc repro tokenize@{found.dataset}` writes it")
    from tokenizers import Tokenizer

    model = load_model(weights.parent, device)
    vocab = text = codec(tokenizer)
    if vocab.size > model.cfg.vocab_size:
        raise DataError(f"{found.tokenizer} has {vocab.size} tokens, the model's vocab_size is {model.cfg.vocab_size}")
    metrics_dir = files.fetch_dir(found.paths.metrics)
    detail_dir = files.fetch_dir(found.paths.metrics / "detail")
    if isinstance(files, _Revision):
        _fetch_tables(files, found.paths.metrics)
    detail = {p.stem: read_json(p) for p in sorted(detail_dir.glob("*.json"))}
    base = files.root if isinstance(files, _Workspace) else files.local
    return Study(study, found.world, found.dataset, found.seed, model, config, vocab, Tokenizer.from_file(str(tokenizer)),
                 headlines(metrics_dir), detail, found.paths, base, rev, text, files)


def _fetch_tables(files: _Revision, metrics: Path) -> None:
    """The CSV tables of metrics/STUDY at the revision (loss.csv, probe/*.csv, ...), copied for `Study.table`."""
    try:
        found = files.fs.glob(f"{metrics.as_posix()}/**/*.csv")
    except FileNotFoundError:
        return
    for name in found:
        files.fetch(Path(str(name).lstrip("/")))


# ---------------------------------------------------------------------------------------------------------
# The example notebooks' arguments


def example_args(default_study: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """`study`, `root`, `rev` and `out` of an example notebook (examples/*.py): from the command line (`python
    examples/cfg.py STUDY --root DIR --rev REV --out DIR`), else the environment (PHYSLM_STUDY, PHYSLM_ROOT,
    PHYSLM_REV, PHYSLM_FIGURES), else `default_study`, the project around the working directory (the nearest
    directory up from it with a params.yaml: a notebook runs in examples/), the workspace and that project's
    examples/out. In a Jupyter kernel only the environment counts (its argv is the kernel's)."""
    here = _project()
    parser = argparse.ArgumentParser()
    parser.add_argument("study", nargs="?", default=os.environ.get("PHYSLM_STUDY", default_study))
    parser.add_argument("--root", default=os.environ.get("PHYSLM_ROOT", str(here)), help="the project (a directory or git URL)")
    parser.add_argument("--rev", default=os.environ.get("PHYSLM_REV") or None, help="a git revision or DVC experiment")
    parser.add_argument("--out", default=os.environ.get("PHYSLM_FIGURES", str(here / "examples" / "out")),
                        help="the directory the figure is written to")
    if argv is None:
        argv = [] if "ipykernel" in sys.modules else sys.argv[1:]
    args, _ = parser.parse_known_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    return args


def _project() -> Path:
    """The nearest directory up from the working directory that holds a params.yaml; the working directory if none."""
    cwd = Path.cwd()
    return next((d for d in (cwd, *cwd.parents) if (d / "params.yaml").is_file()), cwd)
