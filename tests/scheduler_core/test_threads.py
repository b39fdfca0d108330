"""Concurrency: selects from many Python threads (GIL released) never overcommit."""

from __future__ import annotations

import itertools
import random
import re
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from drover import scheduler_core as sc

WORKERS = 8


def test_concurrent_selects_never_overcommit_and_releases_return() -> None:
    t = sc.HostTable(sc.SchedulerConfig(seed=7, host_subset_size=2))
    rng = random.Random(3)
    for i in range(40):
        t.upsert_host(
            f"h{i}",
            vcpus=rng.choice([4, 8]),
            memory_mb=rng.choice([4096, 8192]),
            disk_gb=100,
            cpu_allocation_ratio=1.0,
            ram_allocation_ratio=1.0,
            availability_zone=f"az{i % 2}",
        )
    # nearly full: pre-claim most of every host
    for i, h in enumerate(t.hosts()):
        t.claim(f"pre{i}", h.host, vcpus=h.vcpus - 2, memory_mb=h.memory_mb - 2048, disk_gb=50)
    start = threading.Barrier(WORKERS)

    def worker(n: int) -> tuple[list[str], int]:
        """One thread's selects; returns what it still holds and how often it found no host."""
        r = random.Random(n)
        held: list[str] = []
        failures = 0
        start.wait(timeout=30)
        for j in range(150):
            ids = [f"w{n}-{j}-{k}" for k in range(r.choice([1, 1, 2]))]
            spec = sc.RequestSpec(
                ids,
                r.choice([1, 2]),
                r.choice([512, 1024, 2048]),
                root_gb=1,
                availability_zone=r.choice(["", "az0", "az1"]),
            )
            try:
                res = t.select(spec)
            except sc.NoValidHost:
                failures += 1
                continue
            got = [s.instance_id for s in res.selections]
            assert sorted(got) == sorted(ids), (got, ids)
            if r.random() < 0.3:  # a failed build releases its claim
                for iid in got:
                    assert t.release(iid), iid
            else:
                held.extend(got)
            t.explain(spec)  # readers interleave with writers
        return held, failures

    # .result() re-raises whatever failed inside a worker (an assertion, a panic, a barrier timeout)
    with ThreadPoolExecutor(WORKERS) as pool:
        outcomes = [f.result(timeout=120) for f in [pool.submit(worker, n) for n in range(WORKERS)]]
    placed = [iid for held, _ in outcomes for iid in held]
    # every worker ran to the end (or .result() raised); the fleet is small enough to fill up
    assert placed and sum(failures for _, failures in outcomes) > 0, [(len(h), f) for h, f in outcomes]
    rows = t.hosts()
    for h in rows:
        assert h.free_vcpus >= 0 and h.free_memory_mb >= 0 and h.free_disk_gb >= 0, h
        assert h.vcpus_used <= h.vcpus and h.memory_mb_used <= h.memory_mb
    assert t.num_claims() == len(placed) + len(rows)
    for iid in placed:
        assert t.release(iid)
    for i in range(len(rows)):
        assert t.release(f"pre{i}")
    for h in t.hosts():
        assert (h.vcpus_used, h.memory_mb_used, h.disk_gb_used, h.num_instances, h.io_ops) == (0, 0, 0, 0, 0)


def _longest_stall(call: Callable[[], object]) -> tuple[float, float]:
    """Run `call` while a pure-Python thread spins; return (longest gap in the spinner's progress
    during the call, the call's duration). A call that holds the GIL stalls the spinner for all of
    its native work; one that releases it lets the spinner run on the other core."""
    stamps: list[float] = []
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            stamps.append(time.perf_counter())

    th = threading.Thread(target=spin)
    th.start()
    try:
        while not stamps:
            time.sleep(0.001)
        t0 = time.perf_counter()
        call()
        t1 = time.perf_counter()
    finally:
        stop.set()
        th.join()
    points = [t0, *(s for s in stamps if t0 < s < t1), t1]
    return max(b - a for a, b in itertools.pairwise(points)), t1 - t0


def _spinner_runs_through(call: Callable[[], object], trials: int = 6) -> list[tuple[float, float]]:
    """Per trial (stall, duration) until one shows the spinner never stalled for half the call.

    Holding the GIL for the native part makes the stall at least that part (all but the few ms
    around it), far above half of a >=100 ms call, whatever the 5 ms switch interval does; a
    loaded machine may deschedule the spinner now and then, hence several trials."""
    seen: list[tuple[float, float]] = []
    for _ in range(trials):
        stall, duration = _longest_stall(call)
        seen.append((stall, duration))
        if stall < duration / 2:
            break
    return seen


def _big_table() -> sc.HostTable:
    t = sc.HostTable(sc.SchedulerConfig(seed=1))
    for i in range(100000):
        t.upsert_host(f"h{i}", vcpus=8, memory_mb=8192 + i, disk_gb=100)
    return t


def _holds_gil_for(seconds: float) -> Callable[[], object]:
    """A stand-in native call that keeps the GIL: the re engine backtracking (tuned to `seconds`)."""
    pattern = re.compile(r"(a+)+b")
    n = 16
    while True:
        t0 = time.perf_counter()
        pattern.match("a" * n)
        if time.perf_counter() - t0 >= seconds or n > 30:
            break
        n += 1
    text = "a" * n
    return lambda: pattern.match(text)


def test_gil_is_released_during_select_and_explain() -> None:
    assert sys.getswitchinterval() <= 0.01
    t = _big_table()
    spec = sc.RequestSpec([f"x{k}" for k in range(20)], 1, 1)  # ~100-200 ms of native work

    def select_and_release() -> None:
        for s in t.select(spec).selections:
            t.release(s.instance_id)

    # the control: the same harness sees a stand-in that keeps the GIL as one long stall
    control = _longest_stall(_holds_gil_for(0.15))
    assert control[0] >= control[1] / 2, f"harness blind to a held GIL: {control}"

    for name, call in [("explain", lambda: t.explain(spec)), ("select", select_and_release)]:
        seen = _spinner_runs_through(call)
        stall, duration = seen[-1]
        assert stall < duration / 2, f"{name} held the GIL: (longest stall, call) per trial {seen}"
    assert t.num_claims() == 0
