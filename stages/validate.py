"""validate: params.yaml checked for every stage of every dataset and study before anything runs.

Every other stage depends on its output, so `dvc repro` (and `dvc exp run -S ...`) runs it first whenever
params.yaml or the schemas change, and a bad value or a typo stops the pipeline here, with one line naming the
key, before DVC removes any stage's outputs (DVC clears a stage's outputs just before running its command, so
a stage that rejected its own params would already have lost its previous results). Its output,
metrics/params.ok, says only that the params are valid: it never changes while they are, so a valid change
reruns exactly the stages that read it.
"""

import sys
from pathlib import Path

from physlm.config import validate_all
from physlm.errors import PhyslmError
from physlm.io import atomic_path

OUT = Path("metrics/params.ok")


def main() -> None:
    try:
        counts = validate_all()
    except PhyslmError as err:
        print(f"error: validate: {err}", file=sys.stderr)
        sys.exit(1)
    with atomic_path(OUT) as tmp:
        tmp.write_text("params.yaml is valid for every stage of every dataset and study\n")
    print(f"validate: params.yaml valid ({counts['datasets']} datasets, {counts['studies']} studies)")


if __name__ == "__main__":
    main()
