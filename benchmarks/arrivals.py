"""Arrival schedules for open-loop load: when each request is due, fixed before the run starts.

Open-loop (as wrk2 and ghz measure): requests are due at a fixed rate whether or not earlier
ones have answered, and each is timed from when it was *due*, so a stalled service or a busy
client shows up as latency instead of silently lowering the rate (coordinated omission).
"""

from __future__ import annotations

import itertools
import math
import random

KINDS = ("poisson", "uniform")

# Default rates of ``--rate sweep`` (creates/s); the walk stops at the first saturated rate.
SWEEP_RATES = (50, 100, 200, 300, 400, 500, 600, 700, 800, 1000)


def schedule(rate: float, duration: float, kind: str = "poisson", seed: int = 0) -> list[float]:
    """Due times of requests, seconds after the run's start, ascending, all within [0, duration).

    ``uniform``: one every 1/rate s starting at 0 (exactly floor(rate*duration) requests).
    ``poisson``: exponential gaps of mean 1/rate (a Poisson process; the count is random with mean
    and variance rate*duration), reproducible for a given seed.
    """
    if not rate > 0 or not duration > 0 or math.isinf(rate) or math.isinf(duration):
        raise ValueError(f"rate and duration must be positive and finite (rate={rate}, duration={duration})")
    if kind == "uniform":
        n = math.floor(rate * duration + 1e-9)
        return [i / rate for i in range(n) if i / rate < duration]
    if kind != "poisson":
        raise ValueError(f"unknown arrival kind {kind!r} (one of {', '.join(KINDS)})")
    rng = random.Random(seed)
    out: list[float] = []
    t = rng.expovariate(rate)
    while t < duration:
        out.append(t)
        t += rng.expovariate(rate)
    return out


def split(offsets: list[float], workers: int) -> list[list[tuple[int, float]]]:
    """Deal (index, due offset) pairs round-robin to ``workers`` client processes.

    Together the workers send exactly the whole schedule; each one's share stays evenly spread
    over the run, so no client gets a burst the others don't.
    """
    if workers < 1:
        raise ValueError("workers must be >= 1")
    shares: list[list[tuple[int, float]]] = [[] for _ in range(workers)]
    for i, off in enumerate(offsets):
        shares[i % workers].append((i, off))
    return shares


def parse_sweep(text: str) -> list[float]:
    """``100,200,300`` → [100.0, 200.0, 300.0] (positive, strictly increasing)."""
    rates = [float(x) for x in text.split(",") if x.strip()]
    if not rates or any(r <= 0 for r in rates) or any(b <= a for a, b in itertools.pairwise(rates)):
        raise ValueError(f"--sweep needs positive, increasing rates, got {text!r}")
    return rates
