"""The machine's own speed, measured beside every benchmark figure.

The same VM is slower on some days and busier at some hours (it is shared). A benchmark run
records two fixed micro-benchmarks at its start and at its end, so a slow machine shows in the
JSON instead of being guessed at:

* ``python_loop_ms``: a fixed pure-Python loop (integer arithmetic, a dict, a list, string
  formatting: what the services' Python mostly does), best and median of several rounds;
* ``rust_select_us``: ``drover.scheduler_core`` select latency (p50, p99) for a fixed
  one-instance request on a fixed synthetic 10,000-host table, the claim released after each.

Both are deterministic and must never change (``VERSION`` says which definition was measured):
figures are only comparable between records of the same version. Lower is faster.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any

from benchmarks.stats import pct

VERSION = 1
PY_LOOP_ITERATIONS = 200_000
PY_ROUNDS = 5
RUST_HOSTS = 10_000
RUST_SELECTS = 1000


def python_loop() -> int:
    """The fixed pure-Python work (returns a checksum so nothing is optimised away)."""
    d: dict[int, int] = {}
    acc: list[str] = []
    total = 0
    for i in range(PY_LOOP_ITERATIONS):
        k = (i * 2654435761) & 0xFFFF
        d[k] = d.get(k, 0) + i
        total += k ^ (i >> 3)
        if i % 64 == 0:
            acc.append(f"{k}:{total % 1000}")
    return total + len(d) + len(acc)


def python_loop_ms(rounds: int = PY_ROUNDS) -> dict[str, float]:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        python_loop()
        times.append((time.perf_counter() - t) * 1000)
    return {"best": round(min(times), 2), "median": round(statistics.median(times), 2)}


def rust_select_us(hosts: int = RUST_HOSTS, selects: int = RUST_SELECTS) -> dict[str, float] | None:
    """p50/p99 of one select on a fixed table; None when the Rust core is not importable."""
    try:
        from drover import scheduler_core as sc
    except ImportError:
        return None
    table = sc.HostTable(sc.SchedulerConfig(seed=1))
    for i in range(hosts):
        table.upsert_host(f"speed-{i:05d}", vcpus=32 + (i % 3) * 16, memory_mb=65536 * (1 + i % 4),
                          disk_gb=1000, availability_zone=f"az{i % 3}")
    spec = sc.RequestSpec(instance_ids=["speed"], vcpus=1, memory_mb=512, root_gb=1)
    for _ in range(50):  # warm-up
        table.select(spec)
        table.release("speed")
    times = []
    for _ in range(selects):
        t = time.perf_counter_ns()
        table.select(spec)
        times.append((time.perf_counter_ns() - t) / 1e3)
        table.release("speed")
    return {"p50": round(pct(times, 50), 2), "p99": round(pct(times, 99), 2)}


def measure() -> dict[str, Any]:
    """One reading: both micro-benchmarks, the load average and when (about 0.5–1.5 s)."""
    reading: dict[str, Any] = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        reading["loadavg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        reading["loadavg_1m"] = None
    reading["python_loop_ms"] = python_loop_ms()
    reading["rust_select_us"] = rust_select_us()
    return reading


def describe(reading: dict[str, Any]) -> str:
    py = reading["python_loop_ms"]
    rust = reading["rust_select_us"]
    rust_s = f"rust select p50 {rust['p50']:.1f} µs p99 {rust['p99']:.1f} µs" if rust else "rust core missing"
    return (f"python loop {py['best']:.1f} ms (median {py['median']:.1f}), {rust_s}, "
            f"load {reading['loadavg_1m']}")


class MachineSpeed:
    """Readings at a run's start and end; ``record()`` is the JSON value stored as ``machine_speed``."""

    def __init__(self, log: Any = None) -> None:
        self._log = log or (lambda msg: print(f"[machine speed] {msg}", file=sys.stderr, flush=True))
        self.start: dict[str, Any] | None = None
        self.end: dict[str, Any] | None = None

    def measure_start(self) -> dict[str, Any]:
        self.start = measure()
        self._log("at start: " + describe(self.start))
        return self.start

    def measure_end(self) -> dict[str, Any]:
        self.end = measure()
        self._log("at end: " + describe(self.end))
        return self.end

    def line(self) -> str:
        """One printable line with both readings."""
        return "machine speed: " + "; ".join(
            f"{when} {describe(r)}" for when, r in (("start", self.start), ("end", self.end)) if r)

    def record(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "python_loop_iterations": PY_LOOP_ITERATIONS,
            "rust_select_hosts": RUST_HOSTS,
            "rust_selects": RUST_SELECTS,
            "start": self.start,
            "end": self.end,
        }
