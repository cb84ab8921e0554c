"""How the report writes a number from metrics.json (one place, so the plots, the page and the
test that compares them with metrics.json agree)."""

from __future__ import annotations

import math

STYLES = ("num", "pct", "int", "raw")


def fmt(value, style: str = "num") -> str:
    """num: 4 decimals; pct: a rate as a percentage with 1 decimal; int: whole; raw: 3 decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if style == "int":
        return str(int(value))
    if style == "pct":
        return f"{100 * float(value):.1f}%"
    if style == "raw":
        return f"{float(value):.3f}"
    return f"{float(value):.4f}"


def parse(text: str, style: str) -> float | None:
    """The inverse of :func:`fmt` (for tests and tools reading the report)."""
    if text == "n/a":
        return None
    if style == "pct":
        return float(text.rstrip("%")) / 100
    return float(text)


def tolerance(style: str) -> float:
    """Largest difference between a value and what :func:`fmt` shows of it."""
    return {"num": 5e-5, "pct": 5e-4, "int": 0.0, "raw": 5e-4}[style] + 1e-12
