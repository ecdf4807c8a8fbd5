"""What every stage script shares: its paths, argument handling, and one-line errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from physlm.config import load_stage
from physlm.errors import PhyslmError


@dataclass(frozen=True)
class Paths:
    """Where a study's stages read and write (relative to the repo root, as dvc.yaml declares them)."""

    study: str

    @property
    def raw(self) -> Path:
        return Path("data") / self.study / "raw"

    @property
    def tokens(self) -> Path:
        return Path("data") / self.study / "tokens"

    @property
    def model(self) -> Path:
        return Path("models") / self.study

    @property
    def checkpoints(self) -> Path:
        return Path("checkpoints") / self.study

    @property
    def metrics(self) -> Path:
        return Path("metrics") / self.study


def run_stage(stage: str, main: Callable[[Paths, Any], None], argv: list[str] | None = None) -> None:
    """`python -m stages.<stage> STUDY`: validate params, run `main`; user errors (PhyslmError, which
    GrammarError and DataError are) become one line on stderr and exit code 1."""
    argv = sys.argv[1:] if argv is None else argv
    if stage != "report" and len(argv) != 1:
        sys.exit(f"usage: python -m stages.{stage} STUDY")
    study = argv[0] if argv else ""
    try:
        cfg = load_stage(stage, study)
        main(Paths(study), cfg)
    except PhyslmError as err:
        print(f"error: {stage}{'@' + study if study else ''}: {err}", file=sys.stderr)
        sys.exit(1)
