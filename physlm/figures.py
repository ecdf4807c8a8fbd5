"""What every report section shares: number formatting, and matplotlib set up for files (the Agg backend).
No torch here: the report reads only metrics files (`physlm.report.gather`)."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plt", "fmt", "to_float"]


def fmt(value: Any) -> str:
    """A table cell: floats to 3 decimals, None as a dash."""
    return f"{value:.3f}" if isinstance(value, float) else ("–" if value is None else str(value))


def to_float(value: Any) -> float | None:
    """A CSV cell as a float (None when empty or not a number)."""
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
