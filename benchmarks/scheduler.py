"""Scheduler micro-benchmark: ``drover.scheduler_core`` select latency vs the Python oracle.

    python -m benchmarks.scheduler --hosts 1000,10000,100000 [--mix basic|rich] [--iterations N] [--json PATH]

Builds a realistic mixed fleet per size (three host sizes, three AZs, ~2% disabled and ~2% down,
hypervisor versions mixed, ~half the capacity already claimed by existing instances, a few hosts
with build failures), default filters and weighers, one thread. Each iteration runs ``select``
for a one-instance request (a flavor drawn from a small mix, a third of requests pinned to an AZ)
and releases the claim right after, so the table stays as it was. Reports p50/p99/mean of the
select call as seen from Python (GIL release, result objects and the claim included), the same
for ``explain``, the Rust-side ``elapsed_us``, the table's memory, and the pure-Python reference
(``drover.scheduling.reference``) on the same hosts with fewer iterations.

Targets (docs/architecture.md): 10,000 hosts p50 <= 50 us, p99 <= 200 us; 100,000 hosts p50 <= 1 ms;
a 100,000-host table <= 64 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.machine_speed import MachineSpeed
from benchmarks.stats import pct
from drover import scheduler_core as sc
from drover.scheduling import reference as ref

SIZES = [  # vcpus, memory_mb, disk_gb, share
    (16, 65536, 500, 0.3),
    (32, 131072, 1000, 0.5),
    (64, 262144, 2000, 0.2),
]
FLAVORS = [  # vcpus, memory_mb, root_gb
    (1, 512, 1),
    (1, 2048, 20),
    (2, 4096, 40),
    (4, 8192, 80),
    (8, 16384, 160),
]
AZS = ["az1", "az2", "az3"]


AGGREGATES = [  # name, metadata (AggregateInstanceExtraSpecsFilter / AggregateMultiTenancyIsolation)
    ("ssd-pool", {"ssd": "true"}),
    ("gpu-pool", {"gpu": "true"}),
    ("tenant-a", {"filter_tenant_id": "tenant-a"}),
]


def fleet(n: int, seed: int = 42, mix: str = "basic") -> list[tuple[str, dict[str, Any], list[tuple[int, int, int]]]]:
    """(host, upsert kwargs, existing claims) for a mixed, partially filled fleet.

    ``rich`` adds capabilities and host aggregates, so the extra-spec, tenancy and image
    filters have something to check on every host.
    """
    rng = random.Random(seed)
    out = []
    for i in range(n):
        r = rng.random()
        acc = 0.0
        size = SIZES[-1]
        for cand in SIZES:
            acc += cand[3]
            if r <= acc:
                size = cand
                break
        vcpus, mem, disk, _ = size
        kw = dict(
            vcpus=vcpus,
            memory_mb=mem,
            disk_gb=disk,
            reserved_memory_mb=512,
            availability_zone=AZS[i % 3],
            enabled=rng.random() > 0.02,
            up=rng.random() > 0.02,
            hypervisor_type="QEMU",
            hypervisor_version=rng.choice([6002000, 7000000, 8000000]),
            cpu_arch="x86_64",
            failed_builds=1 if rng.random() < 0.01 else 0,
            io_ops=rng.randint(0, 3),
        )
        # fill to 0-90% of RAM with existing instances
        target = rng.random() * 0.9 * mem
        claims = []
        used = 0
        while True:
            fv = rng.choice(FLAVORS)
            if used + fv[1] > target:
                break
            used += fv[1]
            claims.append(fv)
        kw["num_instances"] = len(claims)
        if mix == "rich":
            kw["capabilities"] = {"ssd": rng.choice(["true", "false"]), "gpus": str(rng.choice([0, 0, 0, 1, 2]))}
            # as Nova's libvirt driver reports the host CPU (capabilities:cpu_info:vendor looks into it)
            kw["cpu_info"] = json.dumps({"arch": "x86_64", "vendor": rng.choice(["intel", "amd"]),
                                         "maxphysaddr": {"mode": "passthrough", "bits": 46}})
            kw["aggregates"] = [a for a in AGGREGATES if rng.random() < 0.3]
        out.append((f"compute-{i:06d}", kw, claims))
    return out


def requests(n: int, seed: int = 7, mix: str = "basic", hosts: int = 0) -> list[dict[str, Any]]:
    """RequestSpec keyword arguments (the same for the Rust core and the oracle).

    ``basic``: a flavor and, for a third, an AZ. ``rich`` adds what a real cloud asks for:
    flavor extra specs (capabilities, aggregate keys), image properties, a tenant, server
    groups with members on a few hosts, and different_host hints.
    """
    rng = random.Random(seed)
    out = []
    for j in range(n):
        v, m, d = rng.choice(FLAVORS)
        kw: dict[str, Any] = dict(instance_ids=[f"bench-{j}"], vcpus=v, memory_mb=m, root_gb=d,
                                  availability_zone=rng.choice(["", "", rng.choice(AZS)]))
        if mix == "rich":
            specs = {}
            if rng.random() < 0.4:
                specs["capabilities:cpu_info:vendor"] = rng.choice(["intel", "<or> intel <or> amd"])
            if rng.random() < 0.3:
                specs["aggregate_instance_extra_specs:ssd"] = "true"
            if rng.random() < 0.2:
                specs["capabilities:gpus"] = ">= 1"
            kw["flavor_extra_specs"] = specs
            kw["image_properties"] = {"hw_architecture": "x86_64", "img_hv_type": "qemu",
                                      **({"img_hv_requested_version": ">= 7000000"} if rng.random() < 0.3 else {})}
            kw["project_id"] = rng.choice(["tenant-a", "tenant-b", "tenant-c"])
            members = [f"compute-{rng.randrange(hosts):06d}" for _ in range(rng.choice([0, 2, 5]))] if hosts else []
            if members:
                kw["group_policy"] = rng.choice(["anti-affinity", "soft-anti-affinity", "soft-affinity"])
                kw["group_hosts"] = members
            if hosts and rng.random() < 0.1:
                kw["different_host"] = [f"pre-compute-{rng.randrange(hosts):06d}"]
        out.append(kw)
    return out


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def bench_size(n: int, iterations: int, oracle_iterations: int, mix: str = "basic") -> dict[str, Any]:
    hosts = fleet(n, mix=mix)
    rss0 = _rss_bytes()
    t0 = time.perf_counter()
    table = sc.HostTable(sc.SchedulerConfig(seed=1))
    k = 0
    for name, kw, claims in hosts:
        table.upsert_host(name, **kw)
        if claims:  # the existing instances' allocations, one claim per host
            table.claim(
                f"pre-{name}",
                name,
                vcpus=sum(c[0] for c in claims),
                memory_mb=sum(c[1] for c in claims),
                disk_gb=sum(c[2] for c in claims),
            )
            table.upsert_host(name, **kw)  # the report after the claims: reported counters
        k += len(claims)
    build_s = time.perf_counter() - t0
    # What the process really grew by (an upper bound: it includes allocator slack and
    # Python's transient objects), beside the table's own count of what it holds.
    rss_growth = _rss_bytes() - rss0
    kwargs = requests(256, mix=mix, hosts=n)
    specs = [sc.RequestSpec(**kw) for kw in kwargs]
    # warm up
    for s in specs[:32]:
        table.explain(s)
    sel: list[float] = []
    native: list[float] = []
    failures = 0
    for i in range(iterations):
        s = specs[i % len(specs)]
        t1 = time.perf_counter_ns()
        try:
            res = table.select(s)
        except sc.NoValidHost:
            failures += 1
            continue
        sel.append((time.perf_counter_ns() - t1) / 1e3)
        native.append(res.explanation.elapsed_us)
        table.release(s.instance_ids[0])
    exp: list[float] = []
    for i in range(max(iterations // 4, 1)):
        s = specs[i % len(specs)]
        t1 = time.perf_counter_ns()
        table.explain(s)
        exp.append((time.perf_counter_ns() - t1) / 1e3)
    passed = table.explain(specs[0]).explanation.hosts_passed

    # the pure-Python reference on the same hosts
    oracle = ref.ReferenceScheduler(ref.Config(seed=1))
    for name, kw, claims in hosts:
        oracle.upsert_host(name, **kw)
        if claims:
            oracle.claim(
                f"pre-{name}",
                name,
                vcpus=sum(c[0] for c in claims),
                memory_mb=sum(c[1] for c in claims),
                disk_gb=sum(c[2] for c in claims),
            )
            oracle.upsert_host(name, **kw)
    orc: list[float] = []
    for i in range(oracle_iterations):
        rs = ref.RequestSpec(**kwargs[i % len(kwargs)])
        t1 = time.perf_counter_ns()
        oracle.explain(rs)
        orc.append((time.perf_counter_ns() - t1) / 1e3)
    return {
        "hosts": n,
        "mix": mix,
        "instances_preclaimed": k,
        "iterations": iterations,
        "no_valid_host": failures,
        "hosts_passed_example": passed,
        "select_p50_us": round(pct(sel, 50), 2),
        "select_p99_us": round(pct(sel, 99), 2),
        "select_mean_us": round(statistics.fmean(sel), 2),
        "select_native_p50_us": round(pct(native, 50), 2),
        "explain_p50_us": round(pct(exp, 50), 2),
        "explain_p99_us": round(pct(exp, 99), 2),
        "oracle_iterations": oracle_iterations,
        "oracle_p50_us": round(pct(orc, 50), 1),
        "speedup_p50": round(pct(orc, 50) / pct(sel, 50), 1),
        "table_bytes": table.memory_bytes(),
        "table_mib": round(table.memory_bytes() / 2**20, 2),
        "table_rss_growth_bytes": rss_growth,
        "build_s": round(build_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", default="10000", help="comma-separated host counts (default 10000)")
    ap.add_argument("--iterations", type=int, default=0, help="selects per size (default: by size)")
    ap.add_argument("--oracle-iterations", type=int, default=0, help="oracle runs per size (default: by size)")
    ap.add_argument("--mix", choices=["basic", "rich"], default="basic",
                    help="request mix: basic (flavor, AZ) or rich (extra specs, image properties, tenants, groups)")
    ap.add_argument("--json", type=Path, help="write results here")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.hosts.split(",") if x.strip()]
    speed = MachineSpeed()
    speed.measure_start()
    results = []
    hdr = (
        f"{'hosts':>8} {'select p50':>11} {'p99':>9} {'native p50':>11} {'explain p50':>12} "
        f"{'oracle p50':>12} {'speedup':>8} {'table MiB':>10} {'RSS +MiB':>9}"
    )
    print(hdr)
    print("-" * len(hdr))
    for n in sizes:
        it = args.iterations or (20000 if n <= 10000 else 2000 if n <= 100000 else 200)
        oit = args.oracle_iterations or (20 if n <= 10000 else 3)
        r = bench_size(n, it, oit, args.mix)
        results.append(r)
        print(
            f"{n:>8} {r['select_p50_us']:>9.1f}us {r['select_p99_us']:>7.1f}us {r['select_native_p50_us']:>9.1f}us "
            f"{r['explain_p50_us']:>10.1f}us {r['oracle_p50_us'] / 1000:>10.1f}ms {r['speedup_p50']:>7.0f}x "
            f"{r['table_mib']:>10.2f} {r['table_rss_growth_bytes'] / 2**20:>9.1f}",
            flush=True,
        )
    speed.measure_end()
    print(speed.line())
    if args.json:
        doc = {
            "benchmark": "scheduler",
            "command": "python -m benchmarks.scheduler " + " ".join(argv if argv is not None else sys.argv[1:]),
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": sys.version.split()[0],
                "loadavg_1m": os.getloadavg()[0],
            },
            "machine_speed": speed.record(),
            "filters": sc.SchedulerConfig().enabled_filters,
            "weighers": sc.SchedulerConfig().weighers,
            "results": results,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
