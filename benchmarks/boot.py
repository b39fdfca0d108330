"""Boot benchmark: tiny real guests, through the whole mesh or the libvirt driver alone.

    python -m benchmarks.boot --servers N [--rounds R] [--json PATH] [--driver-only]

Default (mesh) mode: starts the four services (``LocalMesh``) with the libvirt compute driver
in a temporary data directory, registers the default image (``drover-tiny``, as the libvirt
mesh test does) and, per round, sends N ``CreateServer`` calls (flavor m1.tiny) at once over
gRPC, follows each with a ``WatchServer`` stream (no polling) and records per guest:

* ``accept_s``: the ``CreateServer`` RPC;
* ``running_s``: CreateServer sent → the stream shows ACTIVE with power state RUNNING;
* ``ready_s``: CreateServer sent → the image's ready marker is in ``GetConsoleOutput``
  (polled every 0.1 s once the server has a host);
* ``delete_s``: ``DeleteServer`` sent → the stream shows DELETED (all of a round at once).

At the end it checks that nothing is left behind: no libvirt domain of the run's servers,
no instance directory, no claim on the host, no undeleted server.

``--driver-only``: each round spawns N guests at once through ``LibvirtDriver`` directly —
the same four steps the compute manager runs, no API/conductor/scheduler — and records
``running_s`` (spawn start → domain RUNNING), ``ready_s`` (spawn start → ready marker on
the serial console), the time of each spawn step, and ``destroy_s``.

Both modes boot one unmeasured warm-up guest first. Needs a running libvirtd
(``scripts/setup-libvirt.sh``) and the default image (``scripts/build-default-image.sh``,
built here when missing). Target (docs/architecture.md): create → RUNNING ≤ 2 s for one tiny guest on
this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import grpc

from benchmarks.mesh import git_info, machine_info, proc_cpu_s, wait_hosts
from benchmarks.stats import summary
from drover.agent.driver import GuestSpec, PowerState
from drover.agent.libvirt import default_image
from drover.auth.client import authorized_aio_channel, authorized_channel
from drover.v1 import api_pb2, api_pb2_grpc, types_pb2

REPO = Path(__file__).resolve().parents[1]
# What tests/integration/test_libvirt_mesh.py registers: the default image as a kernel + initrd.
MESH_IMAGE_NAME = "drover-tiny"
MESH_FLAVOR = "m1.tiny"
CONSOLE_POLL_S = 0.1

# (result key, label) of the figures in the printed table, in this order; a mode prints those it has.
FIGURES = (
    ("accept_s", "CreateServer (accept)"),
    ("create_to_running_s", "create -> RUNNING"),
    ("create_to_ready_s", "create -> guest ready"),
    ("delete_s", "delete -> DELETED"),
    ("destroy_s", "destroy"),
    ("round_wall_s", "round wall"),
)


# ---- shared ------------------------------------------------------------------------------


def qemu_version() -> str:
    try:
        out = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.splitlines()[0]
    except Exception:
        return "unknown"


def default_image_dir(args: argparse.Namespace) -> Path:
    """The default image's directory, built when missing."""
    img_dir = Path(args.image_dir) if args.image_dir else default_image.build_dir()
    if not default_image.is_built(img_dir):
        subprocess.run(["bash", str(REPO / "scripts" / "build-default-image.sh"), str(img_dir)], check=True)
    return img_dir


def kernel_package(img_dir: Path) -> str:
    f = img_dir / "kernel-package"
    return f.read_text().strip() if f.exists() else ""


def host_cpu_busy_s() -> float | None:
    """CPU seconds all cores of the machine spent not idle since boot (/proc/stat)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return (sum(fields[:8]) - fields[3] - fields[4]) / (os.sysconf("SC_CLK_TCK") or 100)
    except (OSError, ValueError, IndexError):
        return None


def busy_cores(before: float | None, after: float | None, wall: float) -> float:
    """Average number of busy cores of the machine between two ``host_cpu_busy_s`` readings (NaN if unknown)."""
    if before is None or after is None or wall <= 0:
        return math.nan
    return (after - before) / wall


def format_table(result: dict[str, Any]) -> str:
    """The figures of one result (one N) as a fixed-width table, seconds."""

    def f(s: dict[str, float], k: str) -> str:
        return f"{s[k]:>9.3f}" if k in s else f"{'-':>9}"

    lines = [f"{'figure (s)':<24}{'n':>5}{'p50':>9}{'p95':>9}{'min':>9}{'max':>9}"]
    for key, label in FIGURES:
        s = result.get(key)
        if isinstance(s, dict):
            lines.append(f"{label:<24}{s.get('n', 0):>5}{f(s, 'p50')}{f(s, 'p95')}{f(s, 'min')}{f(s, 'max')}")
    return "\n".join(lines)


# ---- driver-only mode --------------------------------------------------------------------


async def boot_one(drv: Any, image: Any, memory_mb: int, vcpus: int, marker: str, timeout: float) -> dict:
    iid = str(uuid.uuid4())
    guest = GuestSpec(
        instance_id=iid, name=f"bench-{iid[:8]}", host="local", vcpus=vcpus, memory_mb=memory_mb, root_gb=1, image=image
    )
    steps: dict[str, float] = {}
    mark: dict[str, Any] = {"t": time.perf_counter(), "step": ""}  # the running step and its start

    async def on_step(step: str) -> None:
        now = time.perf_counter()
        if mark["step"]:
            steps[str(mark["step"])] = now - float(mark["t"])
        mark["t"], mark["step"] = now, step

    rec: dict[str, Any] = {"instance_id": iid}
    t0 = time.perf_counter()
    mark["t"] = t0
    try:
        state = await drv.spawn(guest, on_step)
        t_run = time.perf_counter()
        steps[str(mark["step"])] = t_run - float(mark["t"])
        rec["running_s"] = t_run - t0
        rec["state"] = PowerState(state).name
        await drv.wait_for_console(iid, marker, timeout=timeout)
        rec["ready_s"] = time.perf_counter() - t0
    except Exception as e:  # recorded, not fatal: the benchmark reports failures
        rec["error"] = f"{type(e).__name__}: {e}"
    rec["steps_s"] = steps
    t1 = time.perf_counter()
    try:
        await drv.destroy(iid)
        rec["destroy_s"] = time.perf_counter() - t1
    except Exception as e:
        rec["destroy_error"] = f"{type(e).__name__}: {e}"
    return rec


async def run_driver(args: argparse.Namespace) -> dict:
    from drover.agent.libvirt.driver import LibvirtDriver

    img_dir = default_image_dir(args)
    image = default_image.image_info(img_dir)
    if args.cmdline:
        image = type(image)(**{**image.__dict__, "properties": {**image.properties, "os_command_line": args.cmdline}})
    marker = image.properties["ready_marker"]

    machine = machine_info()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="drover-boot-bench-") as tmp:
        drv = LibvirtDriver(
            uri=args.uri,
            instances_path=Path(args.instances or Path(tmp) / "instances"),
            image_cache_path=Path(tmp) / "cache",
            virt_type=args.virt_type,
            nic=args.nic,
            boot_timeout=args.timeout,
        )
        await drv.init_host()
        try:
            # warm the image cache and QEMU's page cache; not measured
            await boot_one(drv, image, args.memory, args.vcpus, marker, args.timeout)
            records: list[dict] = []
            wall: list[float] = []
            busy: list[float] = []
            for r in range(args.rounds):
                t0, b0 = time.perf_counter(), host_cpu_busy_s()
                batch = await asyncio.gather(
                    *(boot_one(drv, image, args.memory, args.vcpus, marker, args.timeout) for _ in range(args.servers))
                )
                wall.append(time.perf_counter() - t0)
                busy.append(busy_cores(b0, host_cpu_busy_s(), wall[-1]))
                for rec in batch:
                    rec["round"] = r
                records.extend(batch)
                print(
                    f"round {r + 1}/{args.rounds}: "
                    + ", ".join(
                        f"{rec.get('running_s', math.nan):.2f}/{rec.get('ready_s', math.nan):.2f}s" for rec in batch
                    )
                    + f"  (machine busy {busy[-1]:.2f} cores)",
                    file=sys.stderr,
                )
            virt_type = drv.virt_type
            nic = drv.nic
        finally:
            await drv.cleanup_host()

    ok = [r for r in records if "error" not in r]
    step_names = sorted({s for r in ok for s in r["steps_s"]})
    return {
        "benchmark": "boot",
        "mode": "driver",
        "command": args.command,
        "servers": args.servers,
        "rounds": args.rounds,
        "guests": len(records),
        "failed": len(records) - len(ok),
        "errors": [r["error"] for r in records if "error" in r][:10],
        "create_to_running_s": summary([r["running_s"] for r in ok]),
        "create_to_ready_s": summary([r["ready_s"] for r in ok]),
        "destroy_s": summary([r["destroy_s"] for r in records if "destroy_s" in r]),
        "steps_s": {s: summary([r["steps_s"][s] for r in ok if s in r["steps_s"]]) for s in step_names},
        "round_wall_s": summary(wall),
        "round_busy_cores": [round(b, 2) for b in busy],
        "target": {"create_to_running_p50_s_max": 2.0},
        "environment": {
            "uri": args.uri,
            "virt_type": virt_type,
            "nic": nic,
            "memory_mb": args.memory,
            "vcpus": args.vcpus,
            "kernel_package": kernel_package(img_dir),
            "cmdline": image.properties["os_command_line"],
            "qemu": qemu_version(),
            "host_cpus": os.cpu_count(),
            # other work on the machine skews the concurrent rows: TCG boots are CPU-bound
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
            "python": platform.python_version(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "machine": machine,
        "git": git_info(),
        "records": records,
    }


# ---- mesh mode: pure helpers ---------------------------------------------------------------


def progress(server: types_pb2.Server) -> str:
    """Where one WatchServer revision puts a server, in this benchmark's terms.

    ``running``: ACTIVE with power state RUNNING (create → RUNNING ends here); ``failed``: ERROR or
    STOPPED; ``deleted``; ``spawning``: the compute agent is creating the domain; ``placed``: on a
    host, past scheduling (its console can be asked for); ``pending``: not on a host yet.
    """
    if server.vm_state == types_pb2.VM_STATE_DELETED:
        return "deleted"
    if server.vm_state in (types_pb2.VM_STATE_ERROR, types_pb2.VM_STATE_STOPPED):
        return "failed"
    if server.status == types_pb2.SERVER_STATUS_ACTIVE and server.power_state == types_pb2.POWER_STATE_RUNNING:
        return "running"
    if server.task_state == types_pb2.TASK_STATE_SPAWNING:
        return "spawning"
    if server.host and server.task_state != types_pb2.TASK_STATE_SCHEDULING:
        return "placed"
    return "pending"


def domain_facts(xml: str) -> dict[str, Any]:
    """virt type, memory, vCPUs, NIC types and kernel command line of a libvirt domain XML."""
    root = ET.fromstring(xml)
    kib = 0
    mem = root.find("memory")
    if mem is not None:
        kib = int(mem.text or 0) * {"KiB": 1, "MiB": 1024, "GiB": 1024 * 1024}.get(mem.get("unit", "KiB"), 1)
    vcpu = root.find("vcpu")
    return {
        "virt_type": root.get("type", ""),
        "memory_mb": kib // 1024,
        "vcpus": int(vcpu.text or 0) if vcpu is not None else 0,
        "nic": ",".join(i.get("type", "") for i in root.findall("./devices/interface")) or "none",
        "cmdline": root.findtext("./os/cmdline", ""),
    }


def left_behind(server_ids: Iterable[str], domain_names: Iterable[str], instance_entries: Iterable[str],
                undeleted: Iterable[str] = (), claims: dict[str, int] | None = None) -> dict[str, Any]:
    """What a run left behind: its servers' domains and instance directories, undeleted servers, claims.

    Empty when the run cleaned up after itself.
    """
    ids = set(server_ids)
    out: dict[str, Any] = {}
    domains = sorted(n for n in domain_names if n.startswith("drover-") and n[len("drover-"):] in ids)
    if domains:
        out["domains"] = domains
    entries = sorted(instance_entries)
    if entries:
        out["instance_dirs"] = entries
    servers = sorted(undeleted)
    if servers:
        out["servers"] = servers
    used = {k: v for k, v in (claims or {}).items() if v}
    if used:
        out["claims"] = used
    return out


def summarise_mesh(records: list[dict[str, Any]], wall: list[float]) -> dict[str, Any]:
    """The mesh-mode figures of a list of per-guest records (same keys as the driver-only mode, plus a few)."""
    ok = [r for r in records if "error" not in r]
    stages = sorted({s for r in ok for s in r.get("stream_s", {})})
    return {
        "guests": len(records),
        "failed": len(records) - len(ok),
        "errors": [r["error"] for r in records if "error" in r][:10],
        "delete_errors": [r["delete_error"] for r in records if "delete_error" in r][:10],
        "accept_s": summary([r["accept_s"] for r in records if "accept_s" in r]),
        "create_to_running_s": summary([r["running_s"] for r in ok]),
        "create_to_ready_s": summary([r["ready_s"] for r in ok]),
        "delete_s": summary([r["delete_s"] for r in records if "delete_s" in r]),
        # create → first revision seen with a host / in SPAWNING (diagnostics; a coalesced revision is missed)
        "stream_s": {s: summary([r["stream_s"][s] for r in ok if s in r["stream_s"]]) for s in stages},
        "round_wall_s": summary(wall),
    }


# ---- mesh mode: one guest ---------------------------------------------------------------------


async def watch_until(api: Any, sid: str, stop: set[str], deadline: float,
                      seen: Callable[[str, types_pb2.Server], None] | None = None,
                      since_revision: int = 0) -> tuple[str, types_pb2.Server]:
    """Follow WatchServer until a revision's ``progress`` is in ``stop``; that progress and revision.

    ``since_revision``: the revision CreateServer returned, so that the steps taken before the stream
    opened are replayed rather than skipped.
    """
    call = api.WatchServer(api_pb2.WatchServerRequest(id=sid, follow=True, since_revision=since_revision),
                           timeout=max(1.0, deadline - time.perf_counter()))
    try:
        async for ev in call:
            p = progress(ev.server)
            if seen is not None:
                seen(p, ev.server)
            if p in stop:
                return p, ev.server
    finally:
        call.cancel()
    raise RuntimeError(f"WatchServer {sid} ended before any of {sorted(stop)}")


async def wait_console(api: Any, sid: str, marker: str, placed: asyncio.Event, deadline: float,
                       poll: float = CONSOLE_POLL_S) -> float:
    """perf_counter() when ``marker`` first shows in GetConsoleOutput (polled once the server has a host)."""
    await asyncio.wait_for(placed.wait(), timeout=max(0.0, deadline - time.perf_counter()))
    last = ""
    while True:
        try:
            resp = await api.GetConsoleOutput(api_pb2.GetConsoleOutputRequest(id=sid), timeout=10)
            if marker in resp.output:
                return time.perf_counter()
            last = resp.output[-200:]
        except grpc.aio.AioRpcError as e:  # not spawned yet, or the agent is busy: ask again
            last = f"{e.code().name}: {e.details()}"
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{marker!r} not on the console; last: {last!r}")
        await asyncio.sleep(poll)


async def boot_via_mesh(api: Any, name: str, image_id: str, flavor: str, marker: str, timeout: float,
                        created: list[str], poll: float = CONSOLE_POLL_S) -> dict[str, Any]:
    """CreateServer → ACTIVE/RUNNING (WatchServer) → ready marker (GetConsoleOutput); the guest's record."""
    rec: dict[str, Any] = {"name": name}
    stream: dict[str, float] = {}
    t0 = time.perf_counter()
    deadline = t0 + timeout
    try:
        resp = await api.CreateServer(api_pb2.CreateServerRequest(name=name, flavor_ref=flavor, image_ref=image_id),
                                      timeout=60)
    except grpc.aio.AioRpcError as e:
        rec["error"] = f"CreateServer {e.code().name}: {e.details()}"
        return rec
    rec["accept_s"] = time.perf_counter() - t0
    sid = resp.server.id
    rec["server_id"] = sid
    created.append(sid)
    placed = asyncio.Event()

    def seen(p: str, server: types_pb2.Server) -> None:
        now = time.perf_counter() - t0
        if server.host:
            stream.setdefault("host_assigned", now)
        if p == "spawning":
            stream.setdefault("spawning", now)
        if p in ("placed", "spawning", "running"):
            placed.set()

    console = asyncio.create_task(wait_console(api, sid, marker, placed, deadline, poll))
    try:
        p, server = await watch_until(api, sid, {"running", "failed", "deleted"}, deadline, seen,
                                      resp.server.revision)
        if p != "running":
            rec["error"] = f"{p}: {types_pb2.VmState.Name(server.vm_state)} {server.fault.message}".strip()
        else:
            rec["running_s"] = time.perf_counter() - t0
            rec["host"] = server.host
            rec["ready_s"] = await console - t0
    except (grpc.aio.AioRpcError, TimeoutError, RuntimeError) as e:
        rec["error"] = f"{type(e).__name__}: {e.code().name if isinstance(e, grpc.aio.AioRpcError) else e}"
    finally:
        if not console.done():
            console.cancel()
        with contextlib.suppress(BaseException):
            await console
    rec["stream_s"] = stream
    return rec


async def delete_via_mesh(api: Any, sid: str, timeout: float) -> dict[str, Any]:
    """DeleteServer → the WatchServer stream shows DELETED."""
    t0 = time.perf_counter()
    try:
        await api.DeleteServer(api_pb2.DeleteServerRequest(id=sid), timeout=30)
        await watch_until(api, sid, {"deleted"}, t0 + timeout)
        return {"delete_s": time.perf_counter() - t0}
    except (grpc.aio.AioRpcError, RuntimeError) as e:
        return {"delete_error": f"{type(e).__name__}: {e.code().name if isinstance(e, grpc.aio.AioRpcError) else e}"}


# ---- mesh mode: the run ----------------------------------------------------------------------


async def mesh_rounds(args: argparse.Namespace, address: str, image_id: str, marker: str, created: list[str],
                      inspect: Callable[[str], dict[str, Any]],
                      cpu_probe: Callable[[], dict[str, float | None]], token: str) -> dict[str, Any]:
    async with authorized_aio_channel(address, token) as chan:
        api = api_pb2_grpc.ApiServiceStub(chan)
        # warm the image cache, the page cache and every RPC path; not measured
        warm = await boot_via_mesh(api, "boot-warmup", image_id, args.flavor, marker, args.timeout, created,
                                   args.console_poll)
        domain = inspect(warm["server_id"]) if "running_s" in warm else {}
        if "server_id" in warm:
            warm.update(await delete_via_mesh(api, warm["server_id"], args.timeout))
        if "error" in warm:
            print(f"warm-up guest failed: {warm['error']}", file=sys.stderr)
        records: list[dict[str, Any]] = []
        wall: list[float] = []
        cpu0, t_start = cpu_probe(), time.perf_counter()
        busy: list[float] = []
        for r in range(args.rounds):
            t0, b0 = time.perf_counter(), host_cpu_busy_s()
            batch = await asyncio.gather(*(
                boot_via_mesh(api, f"boot-r{r}-{i}", image_id, args.flavor, marker, args.timeout, created,
                              args.console_poll)
                for i in range(args.servers)))
            wall.append(time.perf_counter() - t0)
            busy.append(busy_cores(b0, host_cpu_busy_s(), wall[-1]))
            deletes = await asyncio.gather(*(delete_via_mesh(api, rec["server_id"], args.timeout)
                                             for rec in batch if "server_id" in rec))
            for rec, d in zip([rec for rec in batch if "server_id" in rec], deletes, strict=True):
                rec.update(d)
            for rec in batch:
                rec["round"] = r
            records.extend(batch)
            print(
                f"round {r + 1}/{args.rounds}: "
                + ", ".join(f"{rec.get('running_s', math.nan):.2f}/{rec.get('ready_s', math.nan):.2f}"
                            f"/{rec.get('delete_s', math.nan):.2f}s" for rec in batch)
                + f"  (running/ready/delete; machine busy {busy[-1]:.2f} cores)",
                file=sys.stderr,
            )
        cpu1, t_end = cpu_probe(), time.perf_counter()
    # CPU seconds over the measured rounds (boots and deletes): each service, and the whole machine (the
    # guests' QEMU, libvirtd, this client and anything else running); TCG boots compete for the same cores
    cpu = {k: round(float(cpu1[k] or 0) - float(v or 0), 2) for k, v in cpu0.items() if v is not None}
    cpu["rounds_wall_s"] = round(t_end - t_start, 2)
    return {"warmup": warm, "domain": domain, "records": records, "wall": wall, "busy": busy, "cpu_s": cpu}


def mesh_leftovers(address: str, token: str, conn: Any, host: str, server_ids: list[str],
                   instances: Path) -> dict[str, Any]:
    """What the run left behind (as tests/integration/test_libvirt_mesh.py checks); empty when clean."""
    with authorized_channel(address, token) as chan:
        api = api_pb2_grpc.ApiServiceStub(chan)
        undeleted = [s.id for s in api.ListServers(api_pb2.ListServersRequest(page_size=1000), timeout=30).servers]
        claims: dict[str, int] = {}
        deadline = time.monotonic() + 10  # claims drop with the next resource report (every second here)
        while True:
            hs = [h for h in api.ListHosts(api_pb2.ListHostsRequest(), timeout=10).hosts if h.host == host]
            claims = {"memory_mb_used": hs[0].memory_mb_used, "vcpus_used": hs[0].vcpus_used,
                      "disk_gb_used": hs[0].disk_gb_used} if hs else {}
            if not any(claims.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    domains = [d.name() for d in conn.listAllDomains()]
    entries = [p.name for p in instances.iterdir()] if instances.is_dir() else []
    return left_behind(server_ids, domains, entries, undeleted, claims)


def destroy_leftover_domains(conn: Any, server_ids: list[str]) -> list[str]:
    """Last resort when a run was interrupted: destroy and undefine the run's domains still defined."""
    names = {f"drover-{sid}" for sid in server_ids}
    gone = []
    for dom in conn.listAllDomains():
        if dom.name() not in names:
            continue
        with contextlib.suppress(Exception):
            if dom.isActive():
                dom.destroy()
        with contextlib.suppress(Exception):
            dom.undefine()
        gone.append(dom.name())
    return gone


def run_mesh(args: argparse.Namespace) -> dict:
    import libvirt

    from drover.localmesh import LocalMesh

    img_dir = default_image_dir(args)
    props = dict(default_image.PROPERTIES)
    if args.cmdline:
        props["os_command_line"] = args.cmdline
    marker = props["ready_marker"]

    machine = machine_info()
    git = git_info()
    load_start = os.getloadavg()
    conn = libvirt.open(args.uri)
    workdir = Path(tempfile.mkdtemp(prefix="drover-boot-mesh-"))
    data = workdir / "data"
    instances = data / "instances"
    host = f"drover-bench-{uuid.uuid4().hex[:8]}"
    settings = {
        "COMPUTE__DRIVER": "libvirt",
        "COMPUTE__HOST": host,
        "COMPUTE__INSTANCES_PATH": str(instances),
        "COMPUTE__REPORT_INTERVAL": "1",
        "COMPUTE__LIBVIRT_URI": args.uri,
        "COMPUTE__VIRT_TYPE": args.virt_type,
        "COMPUTE__NIC": args.nic,
        "COMPUTE__BOOT_TIMEOUT": str(args.timeout),
        # one host takes every guest of a round: the per-host build and instance limits must not bind
        "SCHEDULER__MAX_IO_OPS_PER_HOST": str(max(8, args.servers + 1)),
        "SCHEDULER__MAX_INSTANCES_PER_HOST": str(max(50, args.servers + 1)),
    }
    mesh = LocalMesh.on_free_ports(data, **settings)
    created: list[str] = []
    setup: dict[str, float] = {}
    forced: list[str] = []
    leftovers: dict[str, Any] = {}
    try:
        t = time.monotonic()
        mesh.start(timeout=120)
        setup["mesh_start_s"] = round(time.monotonic() - t, 2)
        setup["hosts_wait_s"] = round(wait_hosts(mesh.addresses["scheduler"], 1, time.monotonic() + 60, mesh), 2)
        with mesh.api_channel() as chan:
            api = api_pb2_grpc.ApiServiceStub(chan)
            image = api.CreateImage(api_pb2.CreateImageRequest(
                name=MESH_IMAGE_NAME, path=str(default_image.kernel_path(img_dir)),
                initrd_path=str(default_image.initrd_path(img_dir)), disk_format="kernel", properties=props),
                timeout=60).image
            flavor = api.GetFlavor(api_pb2.GetFlavorRequest(id=args.flavor), timeout=10).flavor

        def inspect(sid: str) -> dict[str, Any]:
            try:
                return domain_facts(conn.lookupByName(f"drover-{sid}").XMLDesc(0))
            except Exception as e:
                return {"error": str(e)}

        def cpu_probe() -> dict[str, float | None]:
            return {**{svc: proc_cpu_s(p.pid) for svc, p in mesh.procs.items()}, "machine": host_cpu_busy_s()}

        out = asyncio.run(mesh_rounds(args, mesh.addresses["api"], image.id, marker, created, inspect, cpu_probe,
                                      mesh.token))
        leftovers = mesh_leftovers(mesh.addresses["api"], mesh.token, conn, host, created, instances)
    finally:
        try:
            forced = destroy_leftover_domains(conn, created)
            if forced:
                print(f"destroyed {len(forced)} domain(s) the run left behind: {forced}", file=sys.stderr)
        finally:
            mesh.stop()
            conn.close()
            if args.keep_data:
                print(f"data kept in {workdir}", file=sys.stderr)
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    crashed = {n: rc for n, rc in mesh.exited().items() if rc not in (0, -15)}
    domain = out["domain"]
    return {
        "benchmark": "boot",
        "mode": "mesh",
        "command": args.command,
        "servers": args.servers,
        "rounds": args.rounds,
        **summarise_mesh(out["records"], out["wall"]),
        # machine-wide busy cores during each round's boots: ~1 per guest booting (TCG) plus the mesh;
        # more means other work shared the cores
        "round_busy_cores": [round(b, 2) for b in out["busy"]],
        "target": {"create_to_running_p50_s_max": 2.0},
        "left_behind": leftovers,
        "forced_cleanup": forced,
        "services_crashed": crashed,
        "environment": {
            "uri": args.uri,
            "virt_type": domain.get("virt_type", args.virt_type),
            "nic": domain.get("nic", args.nic),
            "flavor": flavor.name,
            "memory_mb": flavor.memory_mb,
            "vcpus": flavor.vcpus,
            "image": MESH_IMAGE_NAME,
            "kernel_package": kernel_package(img_dir),
            "cmdline": domain.get("cmdline", props["os_command_line"]),
            "qemu": qemu_version(),
            "host_cpus": os.cpu_count(),
            "compute_host": host,
            "setup_s": setup,
            "cpu_s": out["cpu_s"],
            "console_poll_s": args.console_poll,
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
            "python": platform.python_version(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "machine": machine,
        "git": git,
        "warmup": out["warmup"],
        "records": out["records"],
    }


# ---- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.boot", description=__doc__.split("\n\n")[0])
    p.add_argument("--servers", type=int, default=1, help="guests booted at once per round (default 1)")
    p.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--driver-only", action="store_true",
                   help="drive LibvirtDriver.spawn directly (no API/conductor/scheduler)")
    p.add_argument("--uri", default=os.environ.get("DROVER_LIBVIRT_URI", "qemu:///system"))
    p.add_argument("--virt-type", default="auto", choices=["auto", "qemu", "kvm"])
    p.add_argument("--nic", default="auto", choices=["auto", "user", "none"])
    p.add_argument("--flavor", default=MESH_FLAVOR, help=f"mesh mode: flavor (default {MESH_FLAVOR})")
    p.add_argument("--memory", type=int, default=128, help="driver-only: MiB per guest (default 128)")
    p.add_argument("--vcpus", type=int, default=1, help="driver-only: vCPUs per guest")
    p.add_argument("--timeout", type=float, default=120.0, help="per-guest boot timeout, s")
    p.add_argument("--image-dir", help="default image directory (default images/build)")
    p.add_argument("--instances", help="driver-only: instances directory (default: a temporary one)")
    p.add_argument("--cmdline", help="override the guest kernel command line")
    p.add_argument("--console-poll", type=float, default=CONSOLE_POLL_S,
                   help=f"mesh mode: GetConsoleOutput interval while waiting for the ready marker, s "
                        f"(default {CONSOLE_POLL_S})")
    p.add_argument("--keep-data", action="store_true", help="mesh mode: keep the temporary data dir (store, logs)")
    args = p.parse_args(argv)
    if args.servers < 1 or args.rounds < 1:
        p.error("--servers and --rounds must be >= 1")
    args.command = "python -m benchmarks.boot " + shlex.join(sys.argv[1:] if argv is None else argv)

    result = asyncio.run(run_driver(args)) if args.driver_only else run_mesh(args)
    r, g = result["create_to_running_s"], result["create_to_ready_s"]
    d = result.get("delete_s") or result["destroy_s"]
    print(f"{result['mode']} mode: {result['guests']} guests ({args.servers} at once x {args.rounds}), "
          f"{result['failed']} failed")
    print(format_table(result))
    print(
        f"create->RUNNING p50 {r.get('p50', math.nan):.3f}s p95 {r.get('p95', math.nan):.3f}s; "
        f"create->ready p50 {g.get('p50', math.nan):.3f}s p95 {g.get('p95', math.nan):.3f}s; "
        f"{'delete' if 'delete_s' in result else 'destroy'} p50 {d.get('p50', math.nan):.3f}s"
    )
    bad = bool(result["failed"])
    for key in ("errors", "delete_errors"):
        if result.get(key):
            print(f"{key}: {result[key]}")
            bad = True
    if result.get("left_behind") or result.get("forced_cleanup"):
        print(f"LEFT BEHIND: {result.get('left_behind')} (forced cleanup: {result.get('forced_cleanup')})")
        bad = True
    if result.get("services_crashed"):
        print(f"services exited abnormally: {result['services_crashed']}")
        bad = True
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
