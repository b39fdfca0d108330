"""Percentiles shared by the benchmarks (nearest rank, as the figures in the READMEs use)."""

from __future__ import annotations

import math
import statistics


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of an unsorted list; NaN when empty."""
    if not values:
        return math.nan
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))]


def summary(values: list[float], ndigits: int | None = None) -> dict[str, float]:
    """n, min, p50, p95, p99, p99.9 (``p999``), max and mean of ``values`` ({"n": 0} when empty)."""
    if not values:
        return {"n": 0}
    s = sorted(values)
    out = {
        "min": s[0],
        "p50": pct(s, 50),
        "p95": pct(s, 95),
        "p99": pct(s, 99),
        "p999": pct(s, 99.9),
        "max": s[-1],
        "mean": statistics.fmean(s),
    }
    if ndigits is not None:
        out = {k: round(v, ndigits) for k, v in out.items()}
    return {"n": len(s), **out}
