"""Concurrency: selects from many Python threads (GIL released) never overcommit."""

from __future__ import annotations

import random
import threading

from drover import scheduler_core as sc


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
    placed: list[str] = []
    failures = [0]
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        r = random.Random(n)
        start.wait()
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
                with lock:
                    failures[0] += 1
                continue
            with lock:
                placed.extend(s.instance_id for s in res.selections)
            if r.random() < 0.3:  # a failed build releases its claim
                for s in res.selections:
                    assert t.release(s.instance_id)
                with lock:
                    for s in res.selections:
                        placed.remove(s.instance_id)
            t.explain(spec)  # readers interleave with writers

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert placed and failures[0] > 0
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


def test_gil_is_released_during_select() -> None:
    t = sc.HostTable(sc.SchedulerConfig(seed=1))
    for i in range(100000):
        t.upsert_host(f"h{i}", vcpus=8, memory_mb=8192 + i, disk_gb=100)
    spec = sc.RequestSpec(["x"], 1, 1)
    done = threading.Event()
    ticks = [0]

    def spin() -> None:
        while not done.is_set():
            ticks[0] += 1

    th = threading.Thread(target=spin)
    th.start()
    try:
        before = ticks[0]
        for _ in range(30):
            t.explain(spec)
        # the spinning thread ran while native code held no GIL
        assert ticks[0] > before
    finally:
        done.set()
        th.join()
