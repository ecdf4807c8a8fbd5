"""What every report section shares: reading metrics files, number formatting, and matplotlib set up for
files (the Agg backend). No torch here: the report reads only metrics files."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import matplotlib

from physlm import io

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plt", "read_json", "read_csv", "fmt", "to_float"]


def read_json(path: Path) -> dict[str, Any]:
    """A metrics JSON file, {} when it is absent (a study whose stage has not run)."""
    return io.read_json(path) if path.is_file() else {}


def read_csv(path: Path) -> list[dict[str, str]]:
    """A metrics CSV file as rows of strings, [] when it is absent."""
    if not path.is_file():
        return []
    with path.open() as fh:
        return list(csv.DictReader(fh))


def fmt(value: Any) -> str:
    """A table cell: floats to 3 decimals, None as a dash."""
    return f"{value:.3f}" if isinstance(value, float) else ("–" if value is None else str(value))


def to_float(value: Any) -> float | None:
    """A CSV cell as a float (None when empty or not a number)."""
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
