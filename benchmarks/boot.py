"""Boot benchmark: tiny real guests through the libvirt compute driver.

    python -m benchmarks.boot --servers N [--rounds R] [--json PATH]

Each round spawns N guests of the default image at once (direct kernel boot, TCG by
default) through ``LibvirtDriver`` — the same four steps the compute manager runs — and
records per guest:

* ``running_s``: spawn start → libvirt reports the domain RUNNING (create → RUNNING);
* ``ready_s``: spawn start → the guest printed its ready marker on the serial console
  (create → guest-ready: kernel booted and /init ran);
* the time of each spawn step, and ``destroy_s``.

Needs a running libvirtd (``scripts/setup-libvirt.sh``) and the default image
(``scripts/build-default-image.sh``, built here when missing). Target (DESIGN.md):
create → RUNNING ≤ 2 s for one tiny guest on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from agent.driver import GuestSpec, PowerState
from agent.libvirt import default_image
from benchmarks.stats import summary

REPO = Path(__file__).resolve().parents[1]


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


def qemu_version() -> str:
    try:
        out = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.splitlines()[0]
    except Exception:
        return "unknown"


async def run(args: argparse.Namespace) -> dict:
    from agent.libvirt.driver import LibvirtDriver

    img_dir = Path(args.image_dir) if args.image_dir else default_image.build_dir()
    if not default_image.is_built(img_dir):
        subprocess.run(["bash", str(REPO / "scripts" / "build-default-image.sh"), str(img_dir)], check=True)
    image = default_image.image_info(img_dir)
    if args.cmdline:
        image = type(image)(**{**image.__dict__, "properties": {**image.properties, "os_command_line": args.cmdline}})
    marker = image.properties["ready_marker"]

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
            for r in range(args.rounds):
                t0 = time.perf_counter()
                batch = await asyncio.gather(
                    *(boot_one(drv, image, args.memory, args.vcpus, marker, args.timeout) for _ in range(args.servers))
                )
                wall.append(time.perf_counter() - t0)
                for rec in batch:
                    rec["round"] = r
                records.extend(batch)
                print(
                    f"round {r + 1}/{args.rounds}: "
                    + ", ".join(
                        f"{rec.get('running_s', math.nan):.2f}/{rec.get('ready_s', math.nan):.2f}s" for rec in batch
                    ),
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
        "target": {"create_to_running_p50_s_max": 2.0},
        "environment": {
            "uri": args.uri,
            "virt_type": virt_type,
            "nic": nic,
            "memory_mb": args.memory,
            "vcpus": args.vcpus,
            "kernel_package": (img_dir / "kernel-package").read_text().strip()
            if (img_dir / "kernel-package").exists()
            else "",
            "cmdline": image.properties["os_command_line"],
            "qemu": qemu_version(),
            "host_cpus": os.cpu_count(),
            # other work on the machine skews the concurrent rows: TCG boots are CPU-bound
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
            "python": platform.python_version(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "records": records,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.boot", description=__doc__.split("\n\n")[0])
    p.add_argument("--servers", type=int, default=1, help="guests booted at once per round (default 1)")
    p.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--uri", default=os.environ.get("DROVER_LIBVIRT_URI", "qemu:///system"))
    p.add_argument("--virt-type", default="auto", choices=["auto", "qemu", "kvm"])
    p.add_argument("--nic", default="auto", choices=["auto", "user", "none"])
    p.add_argument("--memory", type=int, default=128, help="MiB per guest (default 128)")
    p.add_argument("--vcpus", type=int, default=1)
    p.add_argument("--timeout", type=float, default=120.0, help="per-guest boot timeout, s")
    p.add_argument("--image-dir", help="default image directory (default images/build)")
    p.add_argument("--instances", help="instances directory (default: a temporary one)")
    p.add_argument("--cmdline", help="override the guest kernel command line")
    args = p.parse_args(argv)
    if args.servers < 1 or args.rounds < 1:
        p.error("--servers and --rounds must be >= 1")

    result = asyncio.run(run(args))
    r, g = result["create_to_running_s"], result["create_to_ready_s"]
    print(
        f"{result['guests']} guests ({args.servers} at once x {args.rounds}), {result['failed']} failed; "
        f"create->RUNNING p50 {r.get('p50', math.nan):.3f}s p95 {r.get('p95', math.nan):.3f}s; "
        f"create->ready p50 {g.get('p50', math.nan):.3f}s p95 {g.get('p95', math.nan):.3f}s; "
        f"destroy p50 {result['destroy_s'].get('p50', math.nan):.3f}s"
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
