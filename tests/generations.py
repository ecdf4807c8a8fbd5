"""Checks of an evaluate stage's generations table (generations/<study>/evaluate.parquet, `physlm.worlds.Evaluated`)
that the world stage tests share: the columns and their dtypes, one row per judged sample, and every saved output
re-judged by the world's own judge giving the saved verdict and, per set, the metrics' accuracy and count."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from physlm.worlds import COMMON_COLUMNS, GENERATED_COLUMNS


def read(root: Path, study: str, columns: dict[str, Any], *, generated: bool = True) -> pl.DataFrame:
    """The study's generations table, checked: exactly the common columns (with `generated`, output, verdict and
    error too) and `columns`, in that order, with their dtypes; some rows; the headline metrics still flat numbers."""
    frame = pl.read_parquet(root / "generations" / study / "evaluate.parquet")
    common = COMMON_COLUMNS | (GENERATED_COLUMNS if generated else {})
    assert {c: str(t) for c, t in frame.schema.items()} == common | {c: str(t) for c, t in columns.items()}, frame.schema
    assert list(frame.columns) == [*common, *columns]
    assert frame.height > 0 and frame["set"].null_count() == frame["index"].null_count() == 0
    headline = json.loads((root / "metrics" / study / "evaluate.json").read_text())
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in headline.values()), headline
    if generated:  # an error exactly where the verdict is wrong
        assert frame["verdict"].null_count() == 0
        assert (frame["error"].is_null() == frame["verdict"]).all(), frame.filter(frame["error"].is_null() != frame["verdict"])
    return frame


def detail(root: Path, study: str) -> dict:
    return json.loads((root / "metrics" / study / "detail" / "evaluate.json").read_text())


def node(metrics: dict, path: str) -> dict:
    """The metrics entry a `set` names ("/"-joined keys)."""
    for key in path.split("/"):
        metrics = metrics[key]
    return metrics


def rejudge(frame: pl.DataFrame, verdict: Callable[[dict], bool]) -> None:
    """Every row's saved verdict is what `verdict(row)` (the world's judge on the saved output) says."""
    for row in frame.iter_rows(named=True):
        assert verdict(row) == row["verdict"], row


def matches_metrics(frame: pl.DataFrame, metrics: dict, by: tuple[str, ...], accuracy: str, count: str,
                    sets: set[str]) -> None:
    """Per group (`by`: set, and decoding where there is one), the rows' count and mean verdict are the metrics
    entry's `count` and `accuracy`; the table holds exactly `sets`."""
    assert set(frame["set"]) == sets, set(frame["set"])
    for key, group in frame.group_by(by, maintain_order=True):
        entry = node(metrics, "/".join(map(str, key)))
        assert entry[count] == group.height, (key, entry[count], group.height)
        assert math.isclose(entry[accuracy], group["verdict"].mean(), abs_tol=1e-12), (key, entry[accuracy])
