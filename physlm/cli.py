"""What every stage script shares: argument handling, validated params, and one-line errors."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import Any

from physlm.config import SCOPE, SINGULAR, data_name, load_stage
from physlm.errors import PhyslmError
from physlm.io import Paths


def run_stage(stage: str, main: Callable[[Paths, Any], None], argv: list[str] | None = None) -> None:
    """`python -m stages.<stage> NAME` (a dataset for generate/tokenize, a study for train/probe/evaluate):
    validate params, run `main`; user errors (PhyslmError, which GrammarError and DataError are) become one
    line on stderr and exit code 1, and warnings (an unreadable checkpoint ignored, ...) one `warning:` line
    each, without Python's source echo."""
    argv = sys.argv[1:] if argv is None else argv
    warnings.formatwarning = one_line
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


def one_line(message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None) -> str:
    """A warning as the stages print it: `warning: <message>`."""
    return f"warning: {message}\n"
