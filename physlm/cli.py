"""What every stage script shares: its paths, argument handling, and one-line errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from physlm.config import SCOPE, SINGULAR, data_name, load_stage
from physlm.errors import PhyslmError


@dataclass(frozen=True)
class Paths:
    """Where a stage reads and writes (relative to the repo root, as dvc.yaml declares them): a dataset's
    data under data/DATASET, a study's model, checkpoints and metrics under models|checkpoints|metrics/STUDY."""

    study: str  # the study (or, for generate/tokenize, the dataset) the stage runs for
    data: str = ""  # the dataset; defaults to `study`

    @property
    def dataset(self) -> str:
        return self.data or self.study

    @property
    def raw(self) -> Path:
        return Path("data") / self.dataset / "raw"

    @property
    def tokens(self) -> Path:
        return Path("data") / self.dataset / "tokens"

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
    """`python -m stages.<stage> NAME` (a dataset for generate/tokenize, a study for train/probe/evaluate):
    validate params, run `main`; user errors (PhyslmError, which GrammarError and DataError are) become one
    line on stderr and exit code 1."""
    argv = sys.argv[1:] if argv is None else argv
    scope = SCOPE.get(stage)
    if scope and len(argv) != 1:
        sys.exit(f"usage: python -m stages.{stage} {SINGULAR[scope].upper()}")
    study = argv[0] if argv else ""
    try:
        cfg = load_stage(stage, study)
        main(Paths(study, data_name(study) if scope == "studies" else ""), cfg)
    except PhyslmError as err:
        print(f"error: {stage}{'@' + study if study else ''}: {err}", file=sys.stderr)
        sys.exit(1)
