"""Fault drill: every stage fed malformed input, as a user would run it. Each case must fail in one clear line and
leave nothing half-written, or (a bad checkpoint) warn once and train from scratch.

    python benchmarks/fault_drill.py             # about 3 minutes on 2 cores
    python benchmarks/fault_drill.py --jobs 1 -k checkpoint

In a temporary directory it copies the repo's code (physlm/, stages/: later edits of the working tree cannot
change a run) and makes a base repo with every world at a tiny scale (tests/conftest.py `tiny_every_world`):
each dataset generated and tokenized, each world's study trained, probed and evaluated (the report's inputs;
the report reads every study of params.yaml). Each case spoils a fresh copy of the base repo (its params.yaml, an upstream file, a
checkpoint) and runs `python -m stages.<stage> NAME` there as a subprocess. The Markdown table says, per case,
the exit code, how many lines stderr held and the first of them (a checkpoint case: its lines naming the
checkpoint, the rest being progress bars), what was left over (paths added or changed under
the repo: outputs or temporaries that should not exist) and the verdict: ok when it exited 1 with exactly one
stderr line starting `error: ` and wrote nothing; for a bad checkpoint, ok when it exited 0 after exactly one
warning line naming the checkpoint, with no traceback, and wrote its model. Exits 1 if any case is not ok.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import tiny_every_world

STUDIES = {"cfg": "cfg_demo", "igsm": "igsm_demo", "bio": "bio_ft"}
DATASETS = {"cfg": "cfg_demo", "igsm": "igsm_demo", "bio": "bio_tiny"}

Spoil = Callable[[Path], None]  # spoils the case's repo


@dataclass(frozen=True)
class Case:
    name: str
    stage: str
    target: str  # the dataset or study ("" for report and validate)
    spoil: Spoil
    checkpoint: str = ""  # a checkpoint case: the checkpoint's path, which the one warning must name


@dataclass
class Outcome:
    case: Case
    code: int
    lines: list[str]
    left: list[str]
    ok: bool


# ---------------------------------------------------------------------------------------------- spoilers


def params(change: Callable[[dict], None]) -> Spoil:
    """Edit params.yaml."""
    def spoil(repo: Path) -> None:
        found = yaml.safe_load((repo / "params.yaml").read_text())
        change(found)
        (repo / "params.yaml").write_text(yaml.safe_dump(found, sort_keys=False))
    return spoil


def setting(*keys: str, value: object) -> Spoil:
    """params.yaml with the value at keys (made when absent)."""
    def change(found: dict) -> None:
        node = found
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return params(change)


def write(rel: str, data: bytes | str) -> Spoil:
    def spoil(repo: Path) -> None:
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return spoil


GARBAGE = b"\x00\xffnot what it should be\n" * 40


def cut(rel: str) -> Spoil:
    def spoil(repo: Path) -> None:
        path = repo / rel
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return spoil


def remove(rel: str) -> Spoil:
    def spoil(repo: Path) -> None:
        path = repo / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return spoil


def frame(rel: str, change: Callable[[pl.DataFrame], pl.DataFrame]) -> Spoil:
    def spoil(repo: Path) -> None:
        path = repo / rel
        change(pl.read_parquet(path)).write_parquet(path)
    return spoil


def deeper(rel: str) -> Spoil:
    def spoil(repo: Path) -> None:
        path = repo / rel
        config = json.loads(path.read_text())
        path.write_text(json.dumps(config | {"depth": config["depth"] + 1}))
    return spoil


def torch_file(rel: str, obj: object) -> Spoil:
    def spoil(repo: Path) -> None:
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(obj, path)
    return spoil


def cut_torch_file(rel: str) -> Spoil:
    def spoil(repo: Path) -> None:
        torch_file(rel, {"model": {"w": torch.ones(2000)}, "step": 3})(repo)
        cut(rel)(repo)
    return spoil


def float_windows(rel: str) -> Spoil:
    def spoil(repo: Path) -> None:
        np.save(repo / rel, np.zeros((8, 9), dtype=np.float32))
    return spoil


def cut_last_row(rel: str) -> Spoil:
    """A CSV cut just after the first cell of its last row."""
    def spoil(repo: Path) -> None:
        path = repo / rel
        text = path.read_text()
        last = text.rstrip("\n").rfind("\n") + 1
        path.write_text(text[: text.index(",", last) + 1])
    return spoil


def nothing(repo: Path) -> None:
    """The repo as it is (the case is in its command: an unknown name)."""


# --------------------------------------------------------------------------------------------------- cases

RAW = {w: f"data/{d}/raw" for w, d in DATASETS.items()}
TOKENS = {w: f"data/{d}/tokens" for w, d in DATASETS.items()}
CKPT = {w: f"checkpoints/{s}/checkpoint.pt" for w, s in STUDIES.items()}


def strings(f: pl.DataFrame) -> pl.DataFrame:
    """The same columns, every one holding strings."""
    return f.select(pl.lit("x").alias(c) for c in f.columns)


def cases() -> list[Case]:
    return [
        # params.yaml
        Case("typo: unknown key train.stpes", "train", "cfg_demo", setting("studies", "cfg_demo", "train", "stpes", value=5)),
        Case("negative train.steps", "train", "igsm_demo", setting("studies", "igsm_demo", "train", "steps", value=-5)),
        Case("wrong type: model.width 'wide'", "train", "bio_ft", setting("studies", "bio_ft", "model", "width", value="wide")),
        Case("batch_size not a multiple of micro", "train", "cfg_demo",
             setting("studies", "cfg_demo", "train", "micro_batch_size", value=3)),
        Case("unknown world", "generate", "cfg_demo", setting("datasets", "cfg_demo", "world", value="cfgg")),
        Case("study on an unknown dataset", "train", "cfg_demo", setting("studies", "cfg_demo", "data", value="nope")),
        Case("unknown study on the command line", "train", "no_such_study", nothing),
        Case("unknown dataset on the command line", "generate", "no_such_data", nothing),
        Case("unknown grammar name", "generate", "cfg_demo", setting("datasets", "cfg_demo", "generate", "grammar", value="cfg3q")),
        Case("bio variant that cannot combine", "generate", "bio_tiny",
             setting("datasets", "bio_tiny", "generate", "variant", value="multi5+permute+couple")),
        Case("igsm max_edge too small", "generate", "igsm_demo", setting("datasets", "igsm_demo", "generate", "max_edge", value=3)),
        Case("tokenize.context too short for a biography", "tokenize", "bio_tiny",
             setting("datasets", "bio_tiny", "tokenize", "context", value=8)),
        Case("probe layers deeper than the model", "probe", "bio_ft", setting("studies", "bio_ft", "probe", "layers", value=[5])),
        Case("probe layers deeper than the model", "validate", "", setting("studies", "bio_ft", "probe", "layers", value=[5])),
        Case("typo in evaluate section", "validate", "", setting("studies", "igsm_demo", "evaluate", "beems", value=[1])),
        Case("params.yaml not YAML", "generate", "cfg_demo", write("params.yaml", "datasets: [unclosed\n")),
        Case("params.yaml missing", "train", "cfg_demo", remove("params.yaml")),
        # upstream files
        Case("corrupt raw Parquet", "tokenize", "cfg_demo", write(f"{RAW['cfg']}/train.parquet", GARBAGE)),
        Case("raw data missing", "tokenize", "igsm_demo", remove(RAW["igsm"])),
        Case("corrupt meta.json", "train", "cfg_demo", write(f"{TOKENS['cfg']}/meta.json", "{not json")),
        Case("tokens missing", "train", "bio_ft", remove(TOKENS["bio"])),
        Case("meta.json without its keys", "train", "igsm_demo", write(f"{TOKENS['igsm']}/meta.json", '{"world": "igsm"}')),
        Case("corrupt train.npy", "train", "cfg_demo", write(f"{TOKENS['cfg']}/train.npy", GARBAGE)),
        Case("cut-off test.npy", "train", "igsm_demo", cut(f"{TOKENS['igsm']}/test.npy")),
        Case("float windows in train.npy", "train", "cfg_demo", float_windows(f"{TOKENS['cfg']}/train.npy")),
        Case("corrupt test.parquet", "probe", "cfg_demo", write(f"{RAW['cfg']}/test.parquet", GARBAGE)),
        Case("corrupt train.npy (encoder control)", "probe", "cfg_demo", write(f"{TOKENS['cfg']}/train.npy", GARBAGE)),
        Case("cut-off model.safetensors", "probe", "igsm_demo", cut("models/igsm_demo/model.safetensors")),
        Case("corrupt tokenizer.json", "probe", "igsm_demo", write(f"{TOKENS['igsm']}/tokenizer.json", GARBAGE)),
        Case("pretrained config.json missing", "probe", "bio_ft", remove("models/bio_ft/pretrained/config.json")),
        Case("raw Parquet of strings", "probe", "bio_ft", frame(f"{RAW['bio']}/people.parquet", strings)),
        Case("model dir missing", "evaluate", "cfg_demo", remove("models/cfg_demo")),
        Case("corrupt grammar.txt", "evaluate", "cfg_demo", write(f"{RAW['cfg']}/grammar.txt", "S => => A\n")),
        Case("raw Parquet of strings", "evaluate", "igsm_demo", frame(f"{RAW['igsm']}/test.parquet", strings)),
        Case("raw Parquet without rows", "evaluate", "igsm_demo", frame(f"{RAW['igsm']}/opmax.parquet", lambda f: f.head(0))),
        Case("cut-off pretrained model.safetensors", "evaluate", "bio_ft", cut("models/bio_ft/pretrained/model.safetensors")),
        Case("config.json of another depth", "evaluate", "bio_ft", deeper("models/bio_ft/config.json")),
        Case("empty tokenizer.json", "evaluate", "bio_ft", write(f"{TOKENS['bio']}/tokenizer.json", "{}")),
        # metrics (the report's inputs)
        Case("corrupt detail/train.json", "report", "", write("metrics/cfg_demo/detail/train.json", GARBAGE)),
        Case("cut-off detail/probe.json", "report", "", cut("metrics/cfg_demo/detail/probe.json")),
        Case("corrupt loss.csv", "report", "", write("metrics/cfg_demo/loss.csv", GARBAGE)),
        Case("loss.csv cut inside a row", "report", "", cut_last_row("metrics/cfg_demo/loss.csv")),
        Case("ragged probe table", "report", "", cut_last_row("metrics/cfg_demo/probe/probe.csv")),
        Case("detail/train.json a JSON list", "report", "", write("metrics/cfg_demo/detail/train.json", "[1, 2]")),
        Case("detail/train.json without its keys", "report", "", write("metrics/cfg_demo/detail/train.json", '{"params": 3}')),
        Case("loss.csv of other columns", "report", "", write("metrics/cfg_demo/loss.csv", "a,b\n1,2\n")),
        # checkpoints: warned once, trained from scratch
        Case("garbage checkpoint", "train", "cfg_demo", write(CKPT["cfg"], GARBAGE), CKPT["cfg"]),
        Case("empty checkpoint", "train", "igsm_demo", write(CKPT["igsm"], b""), CKPT["igsm"]),
        Case("cut-off checkpoint", "train", "bio_ft", cut_torch_file(CKPT["bio"]), CKPT["bio"]),
        Case("foreign torch file as checkpoint", "train", "cfg_demo", torch_file(CKPT["cfg"], {"x": 1}), CKPT["cfg"]),
        Case("plain tensor as finetune checkpoint", "train", "bio_ft",
             torch_file("checkpoints/bio_ft/finetune/checkpoint.pt", torch.ones(3)), "checkpoints/bio_ft/finetune/checkpoint.pt"),
        Case("garbage encoder-control checkpoint", "probe", "cfg_demo",
             write("checkpoints/cfg_demo-encoder/checkpoint.pt", GARBAGE), "checkpoints/cfg_demo-encoder/checkpoint.pt"),
    ]


# --------------------------------------------------------------------------------------------------- running


def stage(code: Path, repo: Path, name: str, target: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(code), "PHYSLM_TRACKING": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", f"stages.{name}", *([target] if target else [])], cwd=repo, env=env,
                          capture_output=True, text=True, check=False, timeout=600)


def snapshot(repo: Path) -> dict[str, tuple[int, int] | None]:
    """Every path under repo: a file's (size, mtime), None for a directory (made and removed again is no trace)."""
    return {str(p.relative_to(repo)): None if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns) for p in repo.rglob("*")}


def base_repo(code: Path, repo: Path) -> None:
    repo.mkdir()
    params = tiny_every_world()
    params["studies"] = {name: study for name, study in params["studies"].items() if name in STUDIES.values()}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    steps = [(s, d) for d in DATASETS.values() for s in ("generate", "tokenize")]
    steps += [(s, study) for study in STUDIES.values() for s in ("train", "probe", "evaluate")]
    for name, target in [*steps, ("report", "")]:
        done = stage(code, repo, name, target)
        if done.returncode:
            sys.exit(f"fault drill: the base repo's {name}@{target} failed:\n{done.stderr[-3000:]}")
    shutil.rmtree(repo / "reports")


def drill(case: Case, code: Path, base: Path, work: Path) -> Outcome:
    repo = Path(shutil.copytree(base, work / case.name.replace(" ", "_").replace("/", "_") / case.stage))
    case.spoil(repo)
    before = snapshot(repo)
    done = stage(code, repo, case.stage, case.target)
    after = snapshot(repo)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    changed = sorted(set(after) - set(before)) + sorted(p for p in before if p not in after or after[p] != before[p])
    if case.checkpoint:  # ok: trained, after one warning naming the checkpoint
        warned = [line for line in lines if case.checkpoint in line]
        ok = (done.returncode == 0 and len(warned) == 1 and "unreadable checkpoint" in warned[0]
              and "Traceback" not in done.stderr and "weights_only" not in done.stderr)
        lines = warned  # the rest is progress bars
        left = [p for p in changed if ".tmp" in Path(p).name]  # a trained stage writes; no temporary may stay
    else:
        ok = done.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: ") and not changed
        left = changed
    return Outcome(case, done.returncode, lines, left, ok)


def cell(text: str, width: int = 110) -> str:
    text = text.replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def table(outcomes: list[Outcome]) -> str:
    rows = ["| # | case | stage | exit | stderr lines | first stderr line | left over | verdict |",
            "|---|---|---|---|---|---|---|---|"]
    for i, o in enumerate(outcomes, 1):
        target = f"{o.case.stage}@{o.case.target}" if o.case.target else o.case.stage
        left = ", ".join(o.left[:3]) + (f" (+{len(o.left) - 3})" if len(o.left) > 3 else "") if o.left else "none"
        verdict = ("ok (warned, trained)" if o.case.checkpoint else "ok") if o.ok else "**NOT OK**"
        rows.append(f"| {i} | {cell(o.case.name, 45)} | {target} | {o.code} | {len(o.lines)} | "
                    f"{cell(o.lines[0] if o.lines else '')} | {cell(left, 60)} | {verdict} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="cases run side by side (default 2)")
    parser.add_argument("-k", default="", help="only the cases whose name or stage contains this")
    args = parser.parse_args()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="physlm-fault-drill-") as tmp:
        code = Path(tmp) / "code"
        for package in ("physlm", "stages"):
            shutil.copytree(ROOT / package, code / package, ignore=shutil.ignore_patterns("__pycache__"))
        base = Path(tmp) / "base"
        base_repo(code, base)
        ready = time.perf_counter()
        chosen = [c for c in cases() if args.k in c.name or args.k == c.stage]
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            outcomes = list(pool.map(lambda c: drill(c, code, base, Path(tmp) / "cases"), chosen))
    done = time.perf_counter()
    print(table(outcomes))
    bad = [o for o in outcomes if not o.ok]
    print(f"\n{len(outcomes) - len(bad)} of {len(outcomes)} cases ok; base repo {ready - began:.0f} s, cases {done - ready:.0f} s "
          f"({args.jobs} at a time), total {done - began:.0f} s")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
