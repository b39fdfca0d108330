"""Mesh load harness: CreateServer → ACTIVE through the whole drover mesh (fake driver).

    python -m benchmarks.mesh --servers N --concurrency C --hosts H
        [--target ADDRESS [--image NAME] [--metrics SVC=URL ...]]
        [--json PATH] [--plots DIR] [--duration-limit S] [--workers W] [--sample K] [--set KEY=VALUE ...]

Without ``--target`` it starts the four services on free loopback ports (``LocalMesh``) in a
temporary data directory, with one fake compute agent presenting H hosts, waits until the
scheduler knows all H hosts, registers a small raw image, runs the load, and stops the mesh.
With ``--target`` it drives an API that is already running (loopback only).

Load: W client processes (multiprocessing, "spawn"), each one asyncio loop with grpc.aio keeping
its share of C servers in flight. Each server is one ``CreateServer`` followed by one
``WatchServer`` stream (no polling) that ends when the server is ACTIVE or ERROR. At most N
creates are issued; everything is aborted after ``--duration-limit`` seconds (whole run).

Reported (stdout, JSON, PNG): accepted/s and ACTIVE/s (sustained = between the 10 % and 90 %
completions, and overall), stage latencies p50/p95/p99, errors by gRPC status code, final
states, CPU seconds per service, the services' Prometheus metrics when they serve them.
See benchmarks/MESH.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import multiprocessing as mp
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import grpc

from benchmarks import _mesh_client as client
from benchmarks.stats import pct, summary
from drover.auth.client import authorized_channel, bearer, resolve_token
from drover.cli.client import upload_image
from drover.v1 import api_pb2, api_pb2_grpc, scheduler_pb2, scheduler_pb2_grpc

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SERVICES = ("api", "conductor", "scheduler", "compute")

# Fake host size: big enough that resources never limit a benchmark (m1.tiny: 1 vCPU, 512 MB, 1 GB).
FAKE_VCPUS, FAKE_MEMORY_MB, FAKE_DISK_GB = 64, 256 * 1024, 4096
FLAVOR_DEFAULT = "m1.tiny"
IMAGE_NAME = "mesh-bench"

EV_SCHEDULE = "conductor_schedule_and_build_instances"
EV_BUILD = "compute_build_and_run_instance"
EV_SPAWN = "compute_spawn"


class Abort(Exception):
    """The duration limit was reached (or the mesh failed) before the run could finish."""


def log(msg: str) -> None:
    print(f"[mesh] {msg}", file=sys.stderr, flush=True)


# ---- statistics ------------------------------------------------------------------------


def sustained_rate(times: list[float], lo: float = 0.10, hi: float = 0.90) -> float:
    """Events per second between the lo-th and hi-th fraction of events (the steady middle)."""
    n = len(times)
    if n < 2:
        return math.nan
    s = sorted(times)
    i, j = math.floor(lo * n), math.ceil(hi * n) - 1
    if n < 10 or j <= i or s[j] <= s[i]:
        i, j = 0, n - 1
    if s[j] <= s[i]:
        return math.nan
    return (j - i) / (s[j] - s[i])


def _round(x: float, nd: int = 2) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, nd)


# ---- machine / process info --------------------------------------------------------------


def git_info() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10).stdout.strip())
        info: dict[str, Any] = {"commit": commit, "dirty": dirty}
        if dirty:
            # Identify the uncommitted state measured: hash of the diff plus untracked source files.
            import hashlib

            h = hashlib.sha256(subprocess.run(["git", "-C", str(REPO), "diff", "HEAD"], capture_output=True,
                                              timeout=30).stdout)
            untracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "--others", "--exclude-standard",
                                        "drover", "scheduler_core/src"],
                                       capture_output=True, text=True, timeout=10).stdout.split()
            for f in sorted(untracked):
                with contextlib.suppress(OSError):
                    h.update(f.encode() + (REPO / f).read_bytes())
            info["worktree_sha256"] = h.hexdigest()[:16]
        return info
    except (OSError, subprocess.SubprocessError):
        return {}


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "grpc": grpc.__version__,
    }
    with contextlib.suppress(OSError):
        info["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError, IndexError):
        info["mem_total_mb"] = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    return info


_CLK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_s(pid: int) -> float | None:
    """utime+stime of a process (and its waited-for children), seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15]) / _CLK
    except (OSError, ValueError, IndexError):
        return None


def proc_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


# ---- Prometheus --------------------------------------------------------------------------

KEEP_PREFIXES = ("drover_", "grpc_server_handled", "grpc_server_handling_seconds", "grpc_server_started",
                 "process_cpu_seconds", "process_resident_memory")


def scrape(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode("utf-8", "replace")


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus-style quantile from cumulative (le, count) buckets, linear within a bucket."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if math.isinf(le):
                return prev_le
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return buckets[-1][0]


def summarise_metrics(text: str) -> dict[str, Any]:
    """Counters/gauges (sum, count of histograms) and p50/p99 of histograms, for drover's and gRPC's series."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, Any] = {}
    for fam in text_string_to_metric_families(text):
        if not fam.name.startswith(KEEP_PREFIXES):
            continue
        hist: dict[str, list[tuple[float, float]]] = {}
        for smp in fam.samples:
            if smp.name.endswith("_created"):
                continue
            labels = {k: v for k, v in smp.labels.items() if k != "le"}
            key = smp.name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}" if labels else "")
            if smp.name.endswith("_bucket"):
                base = fam.name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"
                                   if labels else "")
                hist.setdefault(base, []).append((float(smp.labels.get("le", "inf")), smp.value))
                continue
            out[key] = smp.value
        for base, b in hist.items():
            for q in (0.5, 0.99):
                v = histogram_quantile(b, q)
                if v is not None:
                    out[f"{base}:p{int(q * 100)}"] = v
    return out


# ---- mesh ------------------------------------------------------------------------------


def mesh_settings(args: argparse.Namespace, metrics_ports: dict[str, int]) -> dict[str, str]:
    per_host = math.ceil(args.servers / max(1, args.hosts))
    settings = {
        "COMPUTE__FAKE_HOSTS": str(args.hosts),
        "COMPUTE__FAKE_VCPUS": str(FAKE_VCPUS),
        "COMPUTE__FAKE_MEMORY_MB": str(FAKE_MEMORY_MB),
        "COMPUTE__FAKE_DISK_GB": str(FAKE_DISK_GB),
        # NumInstancesFilter (default 50) and IoOpsFilter (default 8 builds in flight per host) must never be
        # the limit of a throughput benchmark: 4x the even share per host, plus everything in flight.
        "SCHEDULER__MAX_INSTANCES_PER_HOST": str(max(50, 4 * per_host + 10)),
        "SCHEDULER__MAX_IO_OPS_PER_HOST": str(max(8, 4 * per_host + args.concurrency)),
        "LOG_LEVEL": "WARNING",
    }
    for svc, port in metrics_ports.items():
        settings[f"{svc.upper()}__METRICS_PORT"] = str(port)
    for kv in args.set or []:
        k, _, v = kv.partition("=")
        settings[k.strip().upper().removeprefix("DROVER_")] = v
    return settings


def client_token(flag: str | None, target: str) -> str | None:
    """--token, DROVER_TOKEN, or the admin token of the mesh whose data dir this environment names."""
    from drover.config import load_config

    return resolve_token(flag, target, load_config().data_path)


def wait_hosts(scheduler: str, want: int, deadline: float, mesh: Any) -> float:
    """Poll SchedulerService.ListHosts(limit=1).total until the scheduler knows ``want`` hosts."""
    t0 = time.monotonic()
    last_log = 0.0
    total = 0
    with grpc.insecure_channel(scheduler) as chan:
        stub = scheduler_pb2_grpc.SchedulerServiceStub(chan)
        while True:
            with contextlib.suppress(grpc.RpcError):
                total = stub.ListHosts(scheduler_pb2.SchedulerServiceListHostsRequest(limit=1), timeout=10).total
            if total >= want:
                return time.monotonic() - t0
            if mesh is not None and mesh.exited():
                raise Abort(f"mesh service exited while waiting for hosts: {mesh.exited()}")
            now = time.monotonic()
            if now > deadline:
                raise Abort(f"duration limit reached while waiting for hosts ({total}/{want} known)")
            if now - last_log > 5:
                log(f"scheduler knows {total}/{want} hosts …")
                last_log = now
            time.sleep(0.2)


def ensure_image(api: str, name: str | None, workdir: Path, token: str | None) -> str:
    """The image to boot: ``name`` if given (must exist), else one named mesh-bench (registered if missing)."""
    with authorized_channel(api, token) as chan:
        stub = api_pb2_grpc.ApiServiceStub(chan)
        if name:
            return stub.GetImage(api_pb2.GetImageRequest(id=name), timeout=10).image.id
        for img in stub.ListImages(api_pb2.ListImagesRequest(), timeout=10).images:
            if img.name == IMAGE_NAME and Path(img.path).is_file():
                return img.id
        path = workdir / "mesh-bench.raw"
        path.write_bytes(b"\0" * (1 << 20))
        return upload_image(stub, str(path), IMAGE_NAME, disk_format="raw", timeout=60).id


# ---- load ------------------------------------------------------------------------------


def run_load(args: argparse.Namespace, target: str, image: str, deadline: float,
             cpu_probe: Any = None) -> dict[str, Any]:
    """Start the client processes, show progress, collect their records."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    workers = max(1, min(args.workers, args.concurrency, args.servers))
    ctx = mp.get_context("spawn")
    counters = ctx.Array("q", workers * client.NCOUNTERS, lock=False)
    stop = ctx.Event()
    out = ctx.Queue()
    run_id = f"{int(time.time()) % 100000:05d}"
    procs = []
    for w in range(workers):
        conc = args.concurrency // workers + (1 if w < args.concurrency % workers else 0)
        cfg = {
            "target": target, "image": image, "flavor": args.flavor, "n_total": args.servers, "first": w,
            "stride": workers, "concurrency": conc, "rpc_timeout": args.rpc_timeout, "watch_retries": 3,
            "settle_timeout": args.settle_timeout,
            "metadata": (bearer(args.token),) if args.token else (), "name_prefix": f"bench-{run_id}-w{w}",
        }
        p = ctx.Process(target=client.worker_main, args=(w, cfg, counters, stop, out), daemon=True,
                        name=f"mesh-client-{w}")
        p.start()
        procs.append(p)

    def totals() -> list[int]:
        return [sum(counters[w * client.NCOUNTERS + k] for w in range(workers)) for k in range(client.NCOUNTERS)]

    results: list[dict[str, Any]] = []
    aborted, reason = False, ""
    t_begin = time.monotonic()
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>8}/s"), TextColumn("{task.fields[extra]}"), TimeElapsedColumn(),
        console=console, disable=args.quiet, transient=False, refresh_per_second=4,
    )
    with progress:
        t_acc = progress.add_task("accepted", total=args.servers, rate="", extra="")
        t_act = progress.add_task("ACTIVE", total=args.servers, rate="", extra="")
        hist: list[tuple[float, int, int]] = []
        stop_sent_at = None
        settled_seen = -1
        busy: dict[str, Any] = {"t": time.monotonic(), "cpu": cpu_probe() if cpu_probe else {}}
        while len(results) < workers:
            with contextlib.suppress(Exception):
                while True:
                    results.append(out.get(timeout=0.25))
            now = time.monotonic()
            started, accepted, active, failed, unfinished = totals()
            hist.append((now, accepted, active))
            if active + failed != settled_seen:  # CPU up to the last server that settled (not the idle tail)
                settled_seen = active + failed
                busy = {"t": now, "cpu": cpu_probe() if cpu_probe else {}}
            while len(hist) > 2 and now - hist[0][0] > 5:
                hist.pop(0)
            dt_ = max(1e-6, now - hist[0][0])
            progress.update(t_acc, completed=accepted, rate=f"{(accepted - hist[0][1]) / dt_:.0f}",
                            extra=f"in flight {started - active - failed - unfinished}")
            progress.update(t_act, completed=active, rate=f"{(active - hist[0][2]) / dt_:.0f}",
                            extra=(f"failed {failed} " if failed else "")
                            + (f"gave up {unfinished}" if unfinished else ""))
            if stop_sent_at is None and now > deadline:
                aborted = True
                reason = (f"duration limit of {args.duration_limit:.0f} s reached: "
                          f"{active}/{args.servers} ACTIVE, {accepted} accepted, {failed} failed, "
                          f"{started - active - failed - unfinished} in flight")
                stop.set()
                stop_sent_at = now
            if stop_sent_at is not None and now - stop_sent_at > 20:
                break  # workers did not answer in time; whatever we have is reported
            if not any(p.is_alive() for p in procs) and len(results) < workers:
                with contextlib.suppress(Exception):
                    while True:
                        results.append(out.get(timeout=1.0))
                break
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.terminate()
            p.join(timeout=5)
    if aborted:
        log(f"ABORTED: {reason}")
    missing = workers - len(results)
    for r in results:
        if r.get("error"):
            log(f"client {r['wid']} failed: {r['error']}")
    return {
        "workers": workers, "results": results, "aborted": aborted, "abort_reason": reason,
        "missing_workers": missing, "wall_s": time.monotonic() - t_begin,
        "busy_wall_s": busy["t"] - t_begin, "busy_cpu": busy["cpu"],
    }


# ---- action events sample --------------------------------------------------------------


def _ts(t: Any) -> float | None:
    if t is None or (t.seconds == 0 and t.nanos == 0):
        return None
    return t.seconds + t.nanos / 1e9


async def _sample_actions(target: str, recs: list[dict[str, Any]], token: str | None,
                          parallel: int = 8) -> list[dict[str, Any]]:
    md = (bearer(token),) if token else ()
    out: list[dict[str, Any]] = []
    async with grpc.aio.insecure_channel(target) as chan:
        stub = api_pb2_grpc.ApiServiceStub(chan)
        sem = asyncio.Semaphore(parallel)

        async def one(r: dict[str, Any]) -> None:
            async with sem:
                try:
                    resp = await stub.ListServerActions(api_pb2.ListServerActionsRequest(server_id=r["id"]),
                                                        timeout=30, metadata=md)
                except grpc.aio.AioRpcError:
                    return
            row: dict[str, Any] = {"id": r["id"], "t_accept_wall": r["t_accept_wall"]}
            for act in resp.actions:
                if act.action != "create":
                    continue
                row["action_start"] = _ts(act.start_time)
                for ev in act.events:
                    row[ev.event] = (_ts(ev.start_time), _ts(ev.finish_time), ev.result)
            out.append(row)

        await asyncio.gather(*(one(r) for r in recs))
    return out


async def _get_servers(target: str, ids: list[str], token: str | None) -> list[dict[str, Any]]:
    """Store view of servers whose watch did not settle (to tell a lost event from a stuck build)."""
    from google.protobuf.json_format import MessageToDict

    md = (bearer(token),) if token else ()
    out: list[dict[str, Any]] = []
    async with grpc.aio.insecure_channel(target) as chan:
        stub = api_pb2_grpc.ApiServiceStub(chan)
        for sid in ids:
            try:
                srv = (await stub.GetServer(api_pb2.GetServerRequest(id=sid), timeout=10, metadata=md)).server
                acts = (await stub.ListServerActions(api_pb2.ListServerActionsRequest(server_id=sid),
                                                     timeout=10, metadata=md)).actions
            except grpc.aio.AioRpcError as exc:
                out.append({"id": sid, "error": exc.code().name})
                continue
            d = MessageToDict(srv)
            row = {k: d.get(k) for k in ("id", "vmState", "taskState", "host", "revision", "updatedAt")}
            row["events"] = [f"{e.event}:{e.result or 'running'}" for a in acts for e in a.events]
            out.append(row)
    return out


def action_stages(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    st: dict[str, list[float]] = {"select": [], "conductor_queue": [], "compute_build_event": [],
                                  "compute_spawn_event": [], "schedule_to_build_start": []}
    for row in rows:
        sched = row.get(EV_SCHEDULE)
        build = row.get(EV_BUILD)
        spawn = row.get(EV_SPAWN)
        if sched and sched[0] and sched[1]:
            st["select"].append((sched[1] - sched[0]) * 1000)
            st["conductor_queue"].append((sched[0] - row["t_accept_wall"]) * 1000)
        if build and build[0] and build[1]:
            st["compute_build_event"].append((build[1] - build[0]) * 1000)
        if spawn and spawn[0] and spawn[1]:
            st["compute_spawn_event"].append((spawn[1] - spawn[0]) * 1000)
        if sched and sched[1] and build and build[0]:
            st["schedule_to_build_start"].append((build[0] - sched[1]) * 1000)
    return st


# ---- analysis --------------------------------------------------------------------------


def analyse(records: list[dict[str, Any]]) -> dict[str, Any]:
    started = [r for r in records if r["t_start"]]
    if not started:
        return {}
    t0 = min(r["t_start"] for r in started)
    accepted = [r for r in started if r["id"]]
    active = [r for r in accepted if r["final"] == "ACTIVE"]
    ms = 1000.0
    def seen(r: dict[str, Any], *ranks: int) -> bool:
        return all(r["exact"] & (1 << k) for k in ranks)

    # A stage whose boundary revision the stream skipped (coalesced) would read 0: such servers are left out
    # of that stage (n says how many remain); conductor_pickup uses the first revision with a host or later.
    stages = {
        "api_accept": [(r["t_accept"] - r["t_start"]) * ms for r in accepted],
        "conductor_pickup": [(r["t_host"] - r["t_accept"]) * ms for r in active],
        "compute_pickup": [(r["t_net"] - r["t_host"]) * ms for r in active if seen(r, client.R_HOST, client.R_NET)],
        "compute_prepare": [(r["t_spawn"] - r["t_net"]) * ms for r in active
                            if seen(r, client.R_NET, client.R_SPAWN)],
        "spawn": [(r["t_end"] - r["t_spawn"]) * ms for r in active if seen(r, client.R_SPAWN)],
        "total": [(r["t_end"] - r["t_start"]) * ms for r in active],
        # diagnostics from the servers' own timestamps (same machine, wall clock)
        "watch_lag_host": [r["lag_host"] * ms for r in active if not math.isnan(r["lag_host"])],
        "watch_lag_active": [r["lag_end"] * ms for r in active if not math.isnan(r["lag_end"])],
        "compute_to_conductor": [r["c2c_end"] * ms for r in active if not math.isnan(r["c2c_end"])],
    }
    n_act = max(1, len(active))
    coverage = {
        name: round(sum(1 for r in active if r["exact"] & (1 << bit)) / n_act, 4)
        for name, bit in (("host_assigned", client.R_HOST), ("networking", client.R_NET),
                          ("spawning", client.R_SPAWN))
    }
    acc_times = [r["t_accept"] for r in accepted]
    act_times = [r["t_end"] for r in active]
    t_last = max(r["t_end"] for r in started)
    nb = math.ceil(t_last - t0) + 1
    acc_b, act_b = [0] * nb, [0] * nb
    for t in acc_times:
        acc_b[int(t - t0)] += 1
    for t in act_times:
        act_b[int(t - t0)] += 1
    errors = Counter(r["create_code"] for r in started if r["create_code"])
    watch_errors = Counter(r["watch_code"] for r in accepted if r["watch_code"])
    finals = Counter(r["final"] or "NOT_CREATED" for r in started)
    faults = Counter(r["fault"] for r in accepted if r["final"] == "ERROR")
    return {
        "t0": t0,
        "elapsed_s": t_last - t0,
        "n_started": len(started),
        "n_accepted": len(accepted),
        "n_active": len(active),
        "accepted_per_s": sustained_rate(acc_times),
        "accepted_per_s_overall": len(acc_times) / max(1e-9, max(acc_times) - t0) if acc_times else math.nan,
        "creates_per_s": sustained_rate(act_times),
        "creates_per_s_overall": len(act_times) / max(1e-9, max(act_times) - t0) if act_times else math.nan,
        "stages": stages,
        "coverage": coverage,
        "timeline": {"accepted": acc_b, "active": act_b},
        "errors": dict(errors),
        "watch_errors": dict(watch_errors),
        "final_states": dict(finals),
        "faults": dict(faults.most_common(5)),
        "notifications_seen": {
            "instance.create.start": round(sum(1 for r in active if r["notes"] & 1) / n_act, 4),
            "instance.create.end": round(sum(1 for r in active if r["notes"] & 2) / n_act, 4),
        },
        "revisions_per_server": round(statistics.fmean(r["revisions"] for r in accepted), 2) if accepted else 0,
    }


# ---- plots -----------------------------------------------------------------------------


def plot(result: dict[str, Any], stages: dict[str, list[float]], plots_dir: Path, stem: str) -> list[str]:
    plots_dir.mkdir(parents=True, exist_ok=True)
    title = _title(result)
    files: list[str] = []
    files.append(plot_throughput(result, plots_dir, stem, title))
    files.append(plot_cdf(stages, plots_dir, stem, title))
    return files


def _title(result: dict[str, Any]) -> str:
    return (f"drover mesh: {result['servers']} servers, {result['hosts']} hosts, "
             f"concurrency {result['concurrency']} ({result['machine']['nproc']} cores)")


def _moving_avg(xs: list[int], w: int = 5) -> list[float]:
    out, acc = [], 0.0
    for i, x in enumerate(xs):
        acc += x
        if i >= w:
            acc -= xs[i - w]
        out.append(acc / min(i + 1, w))
    return out


def plot_throughput(result: dict[str, Any], plots_dir: Path, stem: str, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tl = result["timeline"]
    acc, act = list(tl["accepted"]), list(tl["active"])
    last = max([i for i, v in enumerate(acc) if v] + [i for i, v in enumerate(act) if v] + [0])
    acc, act = acc[: last + 2], act[: last + 2]  # drop the idle tail (servers given up on)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    xs = list(range(len(acc)))
    ax.plot(xs, acc, color="C0", lw=0.6, alpha=0.45, drawstyle="steps-post")
    ax.plot(xs, act, color="C1", lw=0.6, alpha=0.45, drawstyle="steps-post")
    ax.plot(xs, _moving_avg(acc), color="C0", lw=1.8, label="accepted/s (CreateServer OK; 1 s buckets, 5 s mean)")
    ax.plot(xs, _moving_avg(act), color="C1", lw=1.8, label="ACTIVE/s (1 s buckets, 5 s mean)")
    if result.get("creates_per_s"):
        ax.axhline(result["creates_per_s"], color="C1", ls="--", lw=0.8,
                   label=f"ACTIVE/s sustained {result['creates_per_s']:.0f}")
    ax.set_xlabel("seconds since first CreateServer")
    ax.set_ylabel("per 1 s bucket")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = plots_dir / f"{stem}-throughput.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def plot_cdf(stages: dict[str, list[float]], plots_dir: Path, stem: str, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    for name, vals in stages.items():
        vals = sorted(v for v in vals if v > 0)
        if not vals:
            continue
        ys = [(i + 1) / len(vals) for i in range(len(vals))]
        ax.plot(vals, ys, drawstyle="steps-post", label=f"{name} (p99 {pct(vals, 99):.1f} ms, n={len(vals)})")
    ax.set_xscale("log")
    ax.set_xlabel("latency, ms (log)")
    ax.set_ylabel("fraction of servers")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path = plots_dir / f"{stem}-latency-cdf.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


# ---- report ----------------------------------------------------------------------------


def print_report(result: dict[str, Any]) -> None:
    def f(x: Any, nd: int = 1) -> str:
        return "-" if x is None else f"{x:.{nd}f}"

    lines = [
        f"servers {result['servers']}  hosts {result['hosts']}  concurrency {result['concurrency']}  "
        f"clients {result['client_processes']}  elapsed {f(result['elapsed_s'])} s",
        f"ACTIVE/s   sustained {f(result['creates_per_s'])}   overall {f(result['creates_per_s_overall'])}",
        f"accepted/s sustained {f(result['accepted_per_s'])}   overall {f(result['accepted_per_s_overall'])}",
        f"stream: {result['revisions_per_server']} messages/server; exact transitions seen "
        f"{result['stage_coverage']}; notifications seen {result['notifications_seen']}",
        f"final states {result['final_states']}   errors {result['errors'] or '{}'}"
        + (f"   watch errors {result['watch_errors']}" if result["watch_errors"] else ""),
        "",
        f"{'stage (ms)':<26}{'n':>7}{'p50':>10}{'p95':>10}{'p99':>10}{'max':>10}",
    ]
    for name, s in result["stage_ms"].items():
        if s.get("n"):
            lines.append(f"{name:<26}{s['n']:>7}{s['p50']:>10.2f}{s['p95']:>10.2f}{s['p99']:>10.2f}{s['max']:>10.2f}")
        else:
            lines.append(f"{name:<26}{0:>7}")
    extra = [f"{k} {result[k]}" for k in result if k.startswith(("scheduler_core_select_", "select_destinations_rpc_"))]
    if extra:
        lines.append("scheduler metrics (histogram-interpolated, ms): " + ", ".join(extra))
    if result.get("cpu"):
        lines.append("")
        c = result["cpu"]
        lines.append(f"CPU over the {c.get('busy_wall_s', 0):.1f} s busy window (s, % of one core): " + ", ".join(
            f"{k} {v['cpu_s']:.1f}" + (f" ({v['util_pct']:.0f}%)" if "util_pct" in v else "")
            for k, v in c.items() if isinstance(v, dict)))
    if result.get("aborted"):
        lines.append(f"ABORTED: {result['abort_reason']}")
    print("\n".join(lines), flush=True)


# ---- main ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.mesh", description=__doc__.split("\n\n")[0])
    ap.add_argument("--servers", type=int, default=2000, help="servers to create (N)")
    ap.add_argument("--concurrency", type=int, default=64, help="servers in flight (create + watch) at once (C)")
    ap.add_argument("--hosts", type=int, default=1000, help="fake hosts presented by the compute agent (H)")
    ap.add_argument("--target", help="API address of a running mesh (loopback); default: start one")
    ap.add_argument("--token", help="with --target: bearer token (default: env DROVER_TOKEN, else the admin "
                                    "token in DROVER_DATA_DIR); a local mesh's admin token otherwise")
    ap.add_argument("--image", help="image name or id to boot (with --target); default: register mesh-bench")
    ap.add_argument("--flavor", default=FLAVOR_DEFAULT)
    ap.add_argument("--json", type=Path, help="default benchmarks/results/mesh-<H>h-<N>s.json")
    ap.add_argument("--plots", type=Path, help="PNG directory (default benchmarks/results/)")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--duration-limit", type=float, default=600.0, help="abort everything after S seconds")
    ap.add_argument("--workers", type=int, default=2, help="client processes")
    ap.add_argument("--sample", type=int, default=500, help="servers whose action events are read (select)")
    ap.add_argument("--rpc-timeout", type=float, default=60.0, help="CreateServer deadline, seconds")
    ap.add_argument("--settle-timeout", type=float, default=120.0,
                    help="give up watching one server this long after its CreateServer (counted unfinished)")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="extra mesh setting (DROVER_* without the prefix), e.g. --set SCHEDULER__HOST_SUBSET_SIZE=2")
    ap.add_argument("--metrics", action="append", metavar="SVC=URL",
                    help="with --target: Prometheus endpoints to record, e.g. api=http://127.0.0.1:9774/metrics")
    ap.add_argument("--keep-data", action="store_true", help="keep the temporary data dir (store, logs)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.servers < 1 or args.concurrency < 1 or args.hosts < 1:
        ap.error("--servers, --concurrency and --hosts must be >= 1")
    if args.target:
        host = args.target.rsplit(":", 1)[0].strip("[]")
        if host not in ("127.0.0.1", "localhost", "::1"):
            ap.error("--target must be a loopback address (127.0.0.1:PORT, localhost:PORT, [::1]:PORT)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_run0 = time.monotonic()
    deadline = t_run0 + args.duration_limit
    stem = f"mesh-{args.hosts}h-{args.servers}s"
    json_path = args.json or RESULTS / f"{stem}.json"
    plots_dir = args.plots or RESULTS
    stem = json_path.stem if args.json else stem
    machine = machine_info()
    git = git_info()  # the code the mesh processes start with
    workdir = Path(tempfile.mkdtemp(prefix="drover-mesh-"))
    mesh = None
    metrics_urls: dict[str, str] = {}
    settings: dict[str, str] = {}
    setup: dict[str, float] = {}
    cpu0: dict[str, float | None] = {}
    aborted, abort_reason = False, ""
    load: dict[str, Any] = {}
    sample_rows: list[dict[str, Any]] = []
    stuck: list[dict[str, Any]] = []
    metrics: dict[str, Any] = {}
    cpu: dict[str, Any] = {}
    rc = 0
    try:
        if args.target:
            target = args.target
            for kv in args.metrics or []:
                svc, _, url = kv.partition("=")
                metrics_urls[svc] = url
            args.token = client_token(args.token, target)
            log(f"target {target} (running mesh); hosts as configured there")
        else:
            from drover.localmesh import LocalMesh, free_port

            ports = {svc: free_port() for svc in SERVICES}
            settings = mesh_settings(args, ports)
            log("mesh settings: " + " ".join(f"{k}={v}" for k, v in settings.items()))
            per_host_cap = min(FAKE_VCPUS * 16, int((FAKE_MEMORY_MB - 512) * 1.5 // 512), FAKE_DISK_GB)
            if args.servers > per_host_cap * args.hosts:
                log(f"warning: {args.servers} servers exceed the fake hosts' capacity ({per_host_cap}/host)")
            mesh = LocalMesh.on_free_ports(workdir / "data", **settings)
            t = time.monotonic()
            mesh.start(timeout=max(10.0, min(180.0, deadline - time.monotonic())))
            setup["mesh_start_s"] = round(time.monotonic() - t, 2)
            target = mesh.addresses["api"]
            args.token = mesh.token  # the load goes through the authenticated path, as any client
            offered = getattr(mesh, "metrics_addresses", None)  # if LocalMesh learns to tell us
            if isinstance(offered, dict) and offered:
                metrics_urls = {k: v if v.startswith("http") else f"http://{v}/metrics" for k, v in offered.items()}
            else:
                metrics_urls = {svc: f"http://127.0.0.1:{p}/metrics" for svc, p in ports.items()}
            log(f"mesh up in {setup['mesh_start_s']} s: {mesh.addresses} (data {workdir / 'data'})")
            setup["hosts_wait_s"] = round(wait_hosts(mesh.addresses["scheduler"], args.hosts, deadline, mesh), 2)
            log(f"scheduler knows {args.hosts} hosts after {setup['hosts_wait_s']} s")
        image = ensure_image(target, args.image, workdir, args.token)
        log(f"image {image}, flavor {args.flavor}; {args.servers} servers, concurrency {args.concurrency}, "
            f"{min(args.workers, args.concurrency, args.servers)} client processes")
        if time.monotonic() > deadline:
            raise Abort("duration limit reached during setup")
        if mesh is not None:
            cpu0 = {svc: proc_cpu_s(p.pid) for svc, p in mesh.procs.items()}
        procs = dict(mesh.procs) if mesh is not None else {}

        def cpu_probe() -> dict[str, float | None]:
            return {svc: proc_cpu_s(p.pid) for svc, p in procs.items()}

        load = run_load(args, target, image, deadline, cpu_probe if procs else None)
        # CPU from the first CreateServer to the last server that settled (a stuck server's idle wait excluded).
        busy_wall = max(1e-6, load["busy_wall_s"])
        for svc, p in procs.items():
            c1 = load["busy_cpu"].get(svc)
            if c1 is not None and cpu0.get(svc) is not None:
                used = c1 - float(cpu0[svc] or 0.0)
                cpu[svc] = {"cpu_s": round(used, 2), "util_pct": round(100 * used / busy_wall, 1),
                            "rss_mb": proc_rss_mb(p.pid)}
        clients_cpu = sum(r.get("cpu_s", 0.0) for r in load["results"])
        cpu["clients"] = {"cpu_s": round(clients_cpu, 2), "note": "whole client processes, incl. start-up"}
        cpu["busy_wall_s"] = round(busy_wall, 2)
        aborted, abort_reason = load["aborted"], load["abort_reason"]
        if mesh is not None and mesh.exited():
            log(f"mesh services exited during the load: {mesh.exited()}")
        # Action events for a sample of ACTIVE servers (select = the conductor's schedule event).
        recs = [dict(zip(client.FIELDS, t, strict=True)) for r in load["results"] for t in r["records"]]
        act = [r for r in recs if r["final"] == "ACTIVE"]
        unfinished = [r for r in recs if r["id"] and r["final"] not in ("ACTIVE", "ERROR")]
        if unfinished:
            stuck = asyncio.run(_get_servers(target, [r["id"] for r in unfinished[:20]], args.token))
            log(f"{len(unfinished)} servers did not settle; the store says: " + json.dumps(stuck[:5]))
        sample = random.Random(42).sample(act, min(args.sample, len(act)))
        if sample and time.monotonic() < deadline + 30:
            sample_rows = asyncio.run(_sample_actions(target, sample, args.token))
        for svc, url in metrics_urls.items():
            try:
                text = scrape(url)
            except Exception as exc:
                metrics[svc] = {"url": url, "error": f"{type(exc).__name__}: {exc}"}
                continue
            raw_dir = json_path.parent / f"{stem}-metrics"
            raw_dir.mkdir(parents=True, exist_ok=True)
            (raw_dir / f"{svc}.prom").write_text(text)
            try:
                metrics[svc] = {"url": url, "series": summarise_metrics(text)}
            except Exception as exc:
                metrics[svc] = {"url": url, "error": f"parse: {exc}"}
        if metrics and all("error" in v for v in metrics.values()):
            log("no Prometheus metrics served (skipped): "
                + "; ".join(f"{k}: {v['error']}" for k, v in metrics.items()))
    except Abort as exc:
        aborted, abort_reason = True, str(exc)
        log(f"ABORTED: {exc}")
    except KeyboardInterrupt:
        aborted, abort_reason = True, "interrupted"
        log("interrupted")
    finally:
        if mesh is not None:
            exited = mesh.exited()
            if exited:
                for svc in exited:
                    log(f"{svc} exited ({exited[svc]}); log tail:\n{mesh.log_tail(svc, 20)}")
            mesh.stop()
        if args.keep_data:
            log(f"data kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    recs = [dict(zip(client.FIELDS, t, strict=True)) for r in load.get("results", []) for t in r["records"]]
    a = analyse(recs)
    if not a:
        log("no server was created; nothing to report")
        return 2
    stages_ms = dict(a["stages"])
    astages = action_stages(sample_rows)
    # select first after api_accept/conductor_pickup in the report order
    ordered = {
        "api_accept": stages_ms["api_accept"],
        "conductor_queue": astages["conductor_queue"],
        "conductor_pickup": stages_ms["conductor_pickup"],
        "select": astages["select"],
        "compute_pickup": stages_ms["compute_pickup"],
        "compute_prepare": stages_ms["compute_prepare"],
        "spawn": stages_ms["spawn"],
        "total": stages_ms["total"],
        "compute_build_event": astages["compute_build_event"],
        "compute_spawn_event": astages["compute_spawn_event"],
        "compute_to_conductor": stages_ms["compute_to_conductor"],
        "watch_lag_host": stages_ms["watch_lag_host"],
        "watch_lag_active": stages_ms["watch_lag_active"],
    }
    stage_summary = {k: summary(v, 3) for k, v in ordered.items()}
    result: dict[str, Any] = {
        "servers": args.servers,
        "hosts": args.hosts,
        "concurrency": args.concurrency,
        "client_processes": load.get("workers"),
        "target": args.target or "local mesh",
        "flavor": args.flavor,
        "creates_per_s": _round(a["creates_per_s"]),
        "creates_per_s_overall": _round(a["creates_per_s_overall"]),
        "accepted_per_s": _round(a["accepted_per_s"]),
        "accepted_per_s_overall": _round(a["accepted_per_s_overall"]),
        "create_p50_ms": stage_summary["api_accept"].get("p50"),
        "create_p99_ms": stage_summary["api_accept"].get("p99"),
        "select_p50_ms": stage_summary["select"].get("p50"),
        "select_p99_ms": stage_summary["select"].get("p99"),
        "total_p50_ms": stage_summary["total"].get("p50"),
        "total_p99_ms": stage_summary["total"].get("p99"),
        "stage_ms": stage_summary,
        "stage_coverage": a["coverage"],
        "select_sample": len(sample_rows),
        "errors": a["errors"],
        "watch_errors": a["watch_errors"],
        "final_states": a["final_states"],
        "active": a["n_active"],
        "accepted": a["n_accepted"],
        "issued": a["n_started"],
        "faults": a["faults"],
        "unfinished": stuck,
        "revisions_per_server": a["revisions_per_server"],
        "notifications_seen": a["notifications_seen"],
        "elapsed_s": round(a["elapsed_s"], 2),
        "run_wall_s": round(time.monotonic() - t_run0, 2),
        "setup": setup,
        "aborted": aborted,
        "abort_reason": abort_reason,
        "duration_limit_s": args.duration_limit,
        "settings": settings,
        "cpu": cpu,
        "metrics": metrics,
        "timeline": a["timeline"],
        "machine": machine,
        "git": git,
        "command": "python -m benchmarks.mesh " + shlex.join(sys.argv[1:] if argv is None else argv),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    # The scheduler's own view (Prometheus histograms, bucket-interpolated), when it serves metrics.
    sched = metrics.get("scheduler", {}).get("series", {})
    for key, name in (("drover_scheduler_select_seconds", "scheduler_core_select"),
                      ("grpc_server_handling_seconds{grpc_method=SelectDestinations,grpc_service=drover.v1."
                       "SchedulerService,grpc_type=unary}", "select_destinations_rpc")):
        for q in ("p50", "p99"):
            if f"{key}:{q}" in sched:
                result[f"{name}_{q}_ms"] = round(sched[f"{key}:{q}"] * 1000, 3)
    if not args.no_plots:
        try:
            result["plots"] = plot(result, {k: ordered[k] for k in ("api_accept", "conductor_pickup", "select",
                                                                    "compute_pickup", "spawn", "total")},
                                   plots_dir, stem)
        except Exception as exc:
            log(f"plots failed: {exc}")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    print_report(result)
    print(f"JSON: {json_path}" + (f"   plots: {', '.join(result.get('plots', []))}" if result.get("plots") else ""))
    if aborted:
        rc = 2
    elif a["n_active"] < args.servers:
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
