"""Chaos harness: load through the public API while services are SIGKILLed and restarted, then an
audit from outside.

    python -m benchmarks.chaos --kill api,conductor,scheduler,compute --kills-per-service 10 \\
        --rate 50 --servers 3000 [--hosts 200] [--delete-fraction 0.3] [--database-url URL]

It starts the mesh (LocalMesh, fake driver), creates servers at ``--rate`` per second from
``--clients`` clients (each create with a client token, retried on UNAVAILABLE / DEADLINE_EXCEEDED)
and deletes a fraction of them as soon as they exist, while it SIGKILLs the services round-robin
on a schedule spread over the load and restarts each at once. Then it waits for quiescence and
audits:

* lost: a server whose create was answered but that the store does not have;
* duplicates: more than one server from one create (the names are unique per request);
* stuck: not settled after the quiet period (BUILD or a task state), or deleted but still there;
* ERROR servers, grouped by fault (a compute killed with the fake driver loses its guests: those
  servers go to ERROR by reconciliation, reported apart as ``error_guest_lost``);
* accounting: each host's vCPUs, RAM, disk and instance count against the servers placed there;
* guests: the instances each host's agent reports against the servers the store has there.

With ``--signal term`` the services are stopped gracefully instead, and each must exit by itself
within ``DRAIN_LIMIT`` seconds.

It writes JSON and a timeline PNG (kills, throughput, errors) to ``--out`` and exits 1 when
anything was lost, duplicated or stuck, or any accounting differs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import random
import re
import signal
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from drover import retry
from drover.localmesh import LocalMesh
from drover.v1 import api_pb2, api_pb2_grpc, types_pb2

SERVICES = ("api", "conductor", "scheduler", "compute")
DRAIN_LIMIT = 15.0  # seconds a service may take to stop on SIGTERM before it is killed
FLAVOR = ("m1.tiny", 1, 512, 1)  # name, vcpus, MB, GB: every server the harness makes
SETTLED_STATES = (types_pb2.VM_STATE_ACTIVE, types_pb2.VM_STATE_ERROR, types_pb2.VM_STATE_DELETED,
                  types_pb2.VM_STATE_STOPPED)
HOLDS_RESOURCES = (types_pb2.VM_STATE_ACTIVE, types_pb2.VM_STATE_BUILDING, types_pb2.VM_STATE_STOPPED)


@dataclass
class Schedule:
    services: list[str]
    kills_per_service: int
    rate: float
    servers: int
    hosts: int = 200
    clients: int = 16
    delete_fraction: float = 0.3
    quiet_timeout: float = 180.0
    database_url: str = ""
    seed: int = 1
    # SIGKILL (a crash) or SIGTERM (a graceful stop, which must drain within DRAIN_LIMIT seconds).
    signal: str = "kill"


@dataclass
class Load:
    """What the clients saw."""

    created: dict[str, str] = field(default_factory=dict)  # name -> server id (answered creates)
    deleted: set[str] = field(default_factory=set)  # ids whose delete was answered
    failed: dict[str, str] = field(default_factory=dict)  # name -> status of a create that failed for good
    events: list[tuple[float, str]] = field(default_factory=list)  # (t, "create"|"delete"|"error")
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, t0: float, what: str) -> None:
        with self.lock:
            self.events.append((time.monotonic() - t0, what))


def _settled(s: types_pb2.Server) -> bool:
    return s.task_state == types_pb2.TASK_STATE_UNSPECIFIED and s.vm_state in SETTLED_STATES


def all_servers(api: api_pb2_grpc.ApiServiceStub) -> list[types_pb2.Server]:
    out, token = [], ""
    while True:
        req = api_pb2.ListServersRequest(page_size=1000, page_token=token, include_deleted=True)
        resp = retry.call(lambda req=req: api.ListServers(req, timeout=30))  # type: ignore[misc]
        out.extend(resp.servers)
        token = resp.next_page_token
        if not token:
            return out


def _client(api: api_pb2_grpc.ApiServiceStub, image_id: str, sched: Schedule, load: Load, t0: float,
            rng: random.Random) -> None:
    """Create ``sched.servers`` at ``sched.rate`` per second; delete a fraction as soon as each exists."""

    def one(i: int, delete: bool) -> None:
        name = f"chaos-{i:06d}"
        req = api_pb2.CreateServerRequest(name=name, flavor_ref=FLAVOR[0], image_ref=image_id,
                                          client_token=retry.new_token())
        try:
            sid = retry.call(lambda: api.CreateServer(req, timeout=10), deadline=120).server.id
        except grpc.RpcError as exc:
            with load.lock:
                load.failed[name] = exc.code().name  # type: ignore[attr-defined]
            load.note(t0, "error")
            return
        with load.lock:
            load.created[name] = sid
        load.note(t0, "create")
        if not delete:
            return
        dreq = api_pb2.DeleteServerRequest(id=sid, client_token=retry.new_token())
        try:
            retry.call(lambda: api.DeleteServer(dreq, timeout=10), deadline=120)
        except grpc.RpcError:
            load.note(t0, "error")
            return
        with load.lock:
            load.deleted.add(sid)
        load.note(t0, "delete")

    with concurrent.futures.ThreadPoolExecutor(sched.clients) as pool:
        futs = []
        for i in range(sched.servers):
            time.sleep(max(0.0, t0 + i / sched.rate - time.monotonic()))
            futs.append(pool.submit(one, i, rng.random() < sched.delete_fraction))
        for f in futs:
            f.result()


def _kill_plan(sched: Schedule, rng: random.Random) -> list[tuple[float, str]]:
    """(seconds after the start, service): round-robin in a shuffled order, spread over the load
    (a restart takes a few seconds: give each kill at least that much of the load)."""
    names = [s for _ in range(sched.kills_per_service) for s in rng.sample(sched.services, len(sched.services))]
    span = sched.servers / sched.rate
    return [((k + 0.5) * span / len(names), name) for k, name in enumerate(names)]


def _wait_quiet(api: api_pb2_grpc.ApiServiceStub, timeout: float) -> tuple[list[types_pb2.Server], float]:
    started = time.monotonic()
    while True:
        servers = all_servers(api)
        if all(_settled(s) for s in servers) or time.monotonic() - started > timeout:
            return servers, time.monotonic() - started
        time.sleep(1.0)


def _hosts(api: api_pb2_grpc.ApiServiceStub) -> list[Any]:
    return list(retry.call(lambda: api.ListHosts(api_pb2.ListHostsRequest(), timeout=10)).hosts)


def _accounting(servers: list[types_pb2.Server], hosts: list[Any]) -> tuple[list[str], list[str]]:
    """Per-host differences: (resources claimed vs servers placed, instances reported vs servers)."""
    placed: Counter[str] = Counter(s.host for s in servers if s.host and s.vm_state in HOLDS_RESOURCES)
    _, vcpus, mb, gb = FLAVOR
    claims, guests = [], []
    for h in hosts:
        n = placed.get(h.host, 0)
        want = (n * vcpus, n * mb, n * gb)
        got = (h.vcpus_used, h.memory_mb_used, h.disk_gb_used)
        if got != want:
            claims.append(f"{h.host}: claimed vcpus/MB/GB {got}, servers placed there need {want}")
        if h.num_instances != n:
            guests.append(f"{h.host}: agent reports {h.num_instances} guests, the store has {n} servers")
    known = {h.host for h in hosts}
    claims += [f"{host}: {n} servers placed on a host the scheduler does not know" for host, n in placed.items()
               if host not in known]
    return claims, guests


def _fault_kind(message: str) -> str:
    """A fault message with its ids and host names taken out, to count faults by kind."""
    if not message:
        return "(no fault)"
    return re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<id>", re.sub(r"host \S+", "host <host>", message))[:160]


def audit(api: api_pb2_grpc.ApiServiceStub, load: Load, sched: Schedule) -> dict[str, Any]:
    servers, waited = _wait_quiet(api, sched.quiet_timeout)
    by_name: dict[str, list[types_pb2.Server]] = defaultdict(list)
    for s in servers:
        by_name[s.name].append(s)
    ids = {s.id: s for s in servers}
    lost = sorted(f"{name} ({sid})" for name, sid in load.created.items() if sid not in ids)
    duplicates = sorted(f"{name}: {len(group)} servers" for name, group in by_name.items() if len(group) > 1)
    stuck = sorted(f"{s.id} {types_pb2.VmState.Name(s.vm_state)}/{types_pb2.TaskState.Name(s.task_state)}"
                   for s in servers if not _settled(s))
    undeleted = sorted(sid for sid in load.deleted if sid in ids and ids[sid].vm_state != types_pb2.VM_STATE_DELETED)
    faults: Counter[str] = Counter()
    for s in servers:
        if s.vm_state == types_pb2.VM_STATE_ERROR:
            faults[_fault_kind(s.fault.message)] += 1
    guest_lost = sum(n for kind, n in faults.items() if "is gone from host" in kind)
    # Claims and reports settle a report interval after the last change: give them a few seconds.
    deadline = time.monotonic() + 20
    while True:
        claims, guests = _accounting(servers, _hosts(api))
        if (not claims and not guests) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
        servers = all_servers(api)
    return {
        "servers_in_store": len(servers),
        "creates_answered": len(load.created),
        "creates_failed": dict(Counter(load.failed.values())),
        "deletes_answered": len(load.deleted),
        "quiet_after_s": round(waited, 1),
        "lost": lost,
        "duplicates": duplicates,
        "stuck": stuck,
        "deleted_but_still_there": undeleted,
        "error": sum(faults.values()),
        "error_guest_lost": guest_lost,
        "error_faults": dict(faults.most_common()),
        "accounting_mismatches": claims,
        "guest_mismatches": guests,
    }


def undrained(report: dict[str, Any]) -> list[str]:
    """Services that did not stop by themselves within DRAIN_LIMIT on SIGTERM."""
    return [f"{k['service']} at {k['t']} s: exit code {k['exit_code']} after {k['stop_s']} s"
            for k in report["kills"] if k["signal"] == "term" and k["exit_code"] not in (0, -signal.SIGTERM)]


def failed(report: dict[str, Any]) -> bool:
    a = report["audit"]
    return bool(a["lost"] or a["duplicates"] or a["stuck"] or a["deleted_but_still_there"]
                or a["accounting_mismatches"] or a["guest_mismatches"] or undrained(report))


def run(sched: Schedule, data_dir: Path) -> dict[str, Any]:
    """Start a mesh in ``data_dir``, run the schedule, audit; the report (JSON-able)."""
    rng = random.Random(sched.seed)
    settings = dict(COMPUTE__FAKE_HOSTS=str(sched.hosts), COMPUTE__REPORT_INTERVAL="5",
                    COMPUTE__SYNC_POWER_STATE_INTERVAL="5", COMPUTE__FAKE_VCPUS="64",
                    COMPUTE__FAKE_MEMORY_MB="65536", SCHEDULER__MAX_INSTANCES_PER_HOST="1000")
    if sched.database_url:
        settings["DATABASE_URL"] = sched.database_url
    mesh = LocalMesh.on_free_ports(data_dir, **settings)
    mesh.start()
    kills: list[dict[str, Any]] = []
    try:
        with mesh.api_channel() as chan:
            api = api_pb2_grpc.ApiServiceStub(chan)
            deadline = time.monotonic() + 60
            while len(_hosts(api)) < sched.hosts and time.monotonic() < deadline:
                time.sleep(0.2)
            image = mesh.data_dir / "images" / "chaos.raw"
            image.parent.mkdir(parents=True, exist_ok=True)
            image.write_bytes(b"\0" * 4096)
            image_id = api.CreateImage(api_pb2.CreateImageRequest(name="chaos", path=str(image), disk_format="raw"),
                                       timeout=30).image.id
            load = Load()
            t0 = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                clients = pool.submit(_client, api, image_id, sched, load, t0, random.Random(sched.seed + 1))
                # Kills and restarts from this thread: a service dies with the thread that started it.
                for at, name in _kill_plan(sched, rng):
                    time.sleep(max(0.0, t0 + at - time.monotonic()))
                    down = time.monotonic()
                    proc = mesh.procs[name]
                    mesh.stop_service(name, sig=signal.SIGTERM if sched.signal == "term" else signal.SIGKILL,
                                      timeout=DRAIN_LIMIT)
                    stopped = time.monotonic()
                    time.sleep(rng.uniform(0.1, 1.0))
                    mesh.start_service(name)
                    kills.append({"t": round(down - t0, 2), "service": name, "signal": sched.signal,
                                  "stop_s": round(stopped - down, 2), "exit_code": proc.returncode,
                                  "down_s": round(time.monotonic() - down, 2)})
                clients.result()
            load_s = time.monotonic() - t0
            report = {"schedule": {k: v for k, v in vars(sched).items()}, "load_s": round(load_s, 1),
                      "kills": kills, "audit": audit(api, load, sched)}
            report["events"] = load.events
            return report
    finally:
        mesh.stop()


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = report["events"]
    end = int(max([t for t, _ in events] + [k["t"] for k in report["kills"]] + [1.0])) + 1
    series = {what: [0] * end for what in ("create", "delete", "error")}
    for t, what in events:
        series[what][int(t)] += 1
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for what, color in (("create", "tab:green"), ("delete", "tab:blue"), ("error", "tab:red")):
        ax.plot(range(end), series[what], color=color, label=f"{what}s answered / s" if what != "error"
                else "requests failed / s")
    colors = {"api": "tab:purple", "conductor": "tab:orange", "scheduler": "tab:brown", "compute": "tab:gray"}
    seen = set()
    for k in report["kills"]:
        label = f"kill {k['service']}" if k["service"] not in seen else None
        seen.add(k["service"])
        ax.axvspan(k["t"], k["t"] + k["down_s"], color=colors.get(k["service"], "black"), alpha=0.25, label=label)
    a = report["audit"]
    ax.set_title(f"chaos: {len(report['kills'])} kills; lost {len(a['lost'])}, duplicates {len(a['duplicates'])}, "
                 f"stuck {len(a['stuck'])}, ERROR {a['error']} ({a['error_guest_lost']} guests lost), "
                 f"accounting mismatches {len(a['accounting_mismatches'])}", fontsize=9)
    ax.set_xlabel("seconds")
    ax.set_ylabel("per second")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kill", default=",".join(SERVICES), help="services to kill, comma-separated")
    p.add_argument("--kills-per-service", type=int, default=10)
    p.add_argument("--rate", type=float, default=50.0, help="creates per second")
    p.add_argument("--servers", type=int, default=3000)
    p.add_argument("--hosts", type=int, default=200)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--delete-fraction", type=float, default=0.3)
    p.add_argument("--quiet-timeout", type=float, default=180.0)
    p.add_argument("--database-url", default="", help="a fresh database (default: SQLite in a temporary dir)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--signal", choices=("kill", "term"), default="kill",
                   help=f"SIGKILL (crash) or SIGTERM (graceful stop, must drain within {DRAIN_LIMIT:.0f} s)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    services = [s.strip() for s in args.kill.split(",") if s.strip()]
    bad = [s for s in services if s not in SERVICES]
    if bad:
        p.error(f"unknown service(s) {', '.join(bad)}; choose from {', '.join(SERVICES)}")
    sched = Schedule(services=services, kills_per_service=args.kills_per_service, rate=args.rate,
                     servers=args.servers, hosts=args.hosts, clients=args.clients,
                     delete_fraction=args.delete_fraction, quiet_timeout=args.quiet_timeout,
                     database_url=args.database_url, seed=args.seed, signal=args.signal)
    with tempfile.TemporaryDirectory(prefix="drover-chaos-") as tmp:
        report = run(sched, Path(tmp))
    store = "postgresql" if args.database_url.startswith("postgresql") else "sqlite"
    stem = f"chaos-{store}-{args.signal}-{len(services)}x{args.kills_per_service}-{args.servers}s"
    args.out.mkdir(parents=True, exist_ok=True)
    plot(report, args.out / f"{stem}.png")
    summary = {k: v for k, v in report.items() if k != "events"}
    (args.out / f"{stem}.json").write_text(json.dumps(summary, indent=2) + "\n")
    a = report["audit"]
    print(json.dumps({k: (len(v) if isinstance(v, list) else v) for k, v in a.items()}, indent=2))
    for line in undrained(report):
        print(f"did not drain: {line}")
    print(f"wrote {args.out / stem}.json and .png")
    return 1 if failed(report) else 0


if __name__ == "__main__":
    raise SystemExit(main())
