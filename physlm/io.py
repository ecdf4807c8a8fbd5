"""Where stages read and write (`Paths`), atomic outputs and checked inputs.

Every stage output is written under a temporary name in the same directory and moved into place only when
complete (DVC's cache may hard-link outputs, so nothing is ever edited in place, and a failed stage leaves
nothing half-written). Parquet inputs are read through `read_parquet`, which turns a missing, corrupt or
wrongly shaped file into one `DataError` line.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from physlm.errors import DataError


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


@contextmanager
def atomic_path(final: str | Path, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `final`; on success it replaces `final`, on error it is removed, with any
    parent directory made for it (a failed stage leaves no trace)."""
    final = Path(final)
    made = [p for p in (final.parent, *final.parent.parents) if not p.exists()]
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    target = tmp if is_dir else tmp / final.name
    try:
        yield target
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        elif final.exists() or final.is_symlink():
            final.unlink()
        os.replace(target, final)
        made = []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        for parent in made:  # deepest first
            with contextlib.suppress(OSError):
                parent.rmdir()


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_csv(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """Rows as CSV with the union of their keys as columns (first-seen order); missing cells stay empty."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def read_parquet(path: str | Path, columns: Sequence[str]) -> pl.DataFrame:
    """Read the named columns of a Parquet file; DataError if it is missing, unreadable or lacks a column."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found (run the stage that produces it)")
    try:
        schema = pl.read_parquet_schema(path)
        missing = [c for c in columns if c not in schema]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)}; has {', '.join(schema)}")
        return pl.read_parquet(path, columns=list(columns))
    except DataError:
        raise
    except Exception as err:  # polars raises several types for corrupt files
        raise DataError(f"{path}: not a readable Parquet file ({type(err).__name__}: {str(err).splitlines()[0]})") from None


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (run the stage that produces it)") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None


def number(value: object) -> float:
    """A value (a CSV cell comes back as a string, "nan" included) as a float; NaN when it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
