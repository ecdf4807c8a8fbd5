"""Where stages read and write (`Paths`), atomic outputs and checked inputs.

Every stage output is written under a temporary name in the same directory and moved into place only when
complete (DVC's cache may hard-link outputs, so nothing is ever edited in place, and a failed stage leaves
nothing half-written); outputs get the ordinary permissions (directories 0o777, files 0o666, less the
umask). Inputs are read through the checked readers `read_parquet`, `read_json`, `read_csv` and `read_npy`,
which turn a missing, corrupt, cut-off or wrongly shaped file into one `DataError` line naming it.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
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
        """The study's git-tracked results: <stage>.json (DVC metrics: flat headline numbers), detail/<stage>.json
        (everything the report reads), the tables. Never a wall-clock time: a rerun that changes no result must
        leave them byte-identical."""
        return Path("metrics") / self.study

    @property
    def generations(self) -> Path:
        """The study's generated samples, judged (the evaluate stage's evaluate.parquet): a DVC-cached output, not
        in git, too big for metrics/."""
        return Path("generations") / self.study

    @property
    def logs(self) -> Path:
        """The study's run log (untracked, not a DVC output): each stage's timings, throughput and resume point,
        which MLflow also records."""
        return Path("logs") / self.study


@contextmanager
def atomic_path(final: str | Path, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `final`; on success it replaces `final`, on error it is removed, with any
    parent directory made for it (a failed stage leaves no trace)."""
    final = Path(final)
    made = [p for p in (final.parent, *final.parent.parents) if not p.exists()]
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_dir(final)
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


def _temporary_dir(final: Path) -> Path:
    """A new directory `.<name>.<random>.tmp` beside `final`, made with the ordinary mode (0o777 less the umask):
    moved into place it becomes an output directory, which tempfile.mkdtemp's 0o700 would make private."""
    while True:
        tmp = final.parent / f".{final.name}.{secrets.token_hex(4)}.tmp"
        try:
            tmp.mkdir()
            return tmp
        except FileExistsError:
            continue


def ordinary_mode(path: str | Path) -> None:
    """Give a file the mode `open` would have made it with, 0o666 less the umask: for files a library writes
    private (safetensors: 0o600), which as outputs should be as readable as any other."""
    mask = os.umask(0o022)  # reading the umask means setting it
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_parquet(path: str | Path, frame: pl.DataFrame) -> None:
    """A frame as Parquet (zstd, no statistics: the same frame gives the same bytes, as for the datasets)."""
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp, compression="zstd", statistics=False)


def write_csv(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """Rows as CSV with the union of their keys as columns (first-seen order); missing cells stay empty."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def read_parquet(path: str | Path, columns: Sequence[str] | Mapping[str, Any]) -> pl.DataFrame:
    """Read the named columns of a Parquet file; DataError if it is missing, unreadable, has no rows or lacks a
    column, or, when `columns` maps names to polars dtypes, if a column holds another kind of value (`dtype_kind`:
    strings where integers belong, say; the width of an integer type is free)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found (run the stage that produces it)")
    try:
        schema = pl.read_parquet_schema(path)
        missing = [c for c in columns if c not in schema]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)}; has {', '.join(schema)}")
        wanted = columns if isinstance(columns, Mapping) else {}
        wrong = [f"{c} holds {schema[c]}, not {want}" for c, want in wanted.items() if dtype_kind(schema[c]) != dtype_kind(want)]
        if wrong:
            raise DataError(f"{path}: column {'; '.join(wrong)}")
        frame = pl.read_parquet(path, columns=list(columns))
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 (polars raises several types for corrupt files)
        raise DataError(f"{path}: not a readable Parquet file ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    if frame.is_empty():
        raise DataError(f"{path}: no rows (run the stage that produces it again)")
    return frame


def dtype_kind(dtype: Any) -> str:
    """What a polars dtype holds, widths and signs aside: "integer", "float", "list[integer]", "String", ..."""
    if dtype.is_integer():
        return "integer"
    if dtype.is_float():
        return "float"
    if isinstance(dtype, pl.List):
        return f"list[{dtype_kind(dtype.inner)}]"
    return str(dtype)


def read_json(path: str | Path, keys: Sequence[str] = ()) -> Any:
    """A JSON file's value; DataError if it is missing, not text, not valid JSON, or (given `keys`) not an object
    holding every one of them."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (run the stage that produces it)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: unreadable ({type(err).__name__}: {err})") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    missing = [k for k in keys if not isinstance(data, dict) or k not in data]
    if missing:
        raise DataError(f"{path}: missing key(s) {', '.join(missing)}" if isinstance(data, dict) else
                        f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_csv(path: str | Path, columns: Sequence[str] = ()) -> list[dict[str, str]]:
    """A CSV file's rows as {column: cell} (cells are strings; blank lines skipped); DataError if it is missing,
    not text, ragged (a row with more or fewer cells than the header: cut off or corrupt; `write_csv` writes
    every cell) or lacks one of `columns`."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        rows = [row for row in csv.reader(lines) if row]
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (run the stage that produces it)") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: not a readable CSV file ({type(err).__name__}: {err})") from None
    header, body = (rows[0], rows[1:]) if rows else ([], [])
    ragged = next((i for i, row in enumerate(body, 2) if len(row) != len(header)), None)
    if ragged is not None:
        raise DataError(f"{path}: row {ragged} has {len(body[ragged - 2])} cells, the header {len(header)} (cut off or corrupt)")
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; has {', '.join(header)}")
    return [dict(zip(header, row)) for row in body]


def read_npy(path: str | Path) -> np.ndarray:
    """A .npy array, memory-mapped and never unpickled; DataError if it is missing or unreadable (a corrupt
    header, a cut-off body, an object array)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found (run the stage that produces it)")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: not a readable .npy file ({type(err).__name__}: {err})") from None


def number(value: object) -> float:
    """A value (a CSV cell comes back as a string, "nan" included) as a float; NaN when it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
