"""Real guests: the default image booted under qemu:///system through LibvirtDriver.

Marked ``libvirt``; they skip (with the reason) where libvirt-python or libvirtd is
missing, and need ``scripts/setup-libvirt.sh`` (CI runs it) to run for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from drover.agent.driver import DriverError, GuestSpec, ImageInfo, PowerState

pytestmark = pytest.mark.libvirt

MARKER = "DROVER-GUEST-READY"


def new_guest(drv, image: ImageInfo, **kw) -> GuestSpec:
    iid = str(uuid.uuid4())
    drv.test_instances.append(iid)  # the fixture destroys whatever a failed test left
    base = dict(
        instance_id=iid,
        name="real",
        host="local",
        vcpus=1,
        memory_mb=128,
        root_gb=1,
        image=image,
        metadata={"drover_test": "tests/libvirt"},
    )
    base.update(kw)
    return GuestSpec(**base)


@pytest.fixture
def default_image(default_image_dir):
    from drover.agent.libvirt import default_image

    return default_image.image_info(default_image_dir)


def leftovers(drv, iid: str) -> list[str]:
    import libvirt

    found = []
    conn = libvirt.open(drv.uri)
    try:
        try:
            conn.lookupByName(f"drover-{iid}")
            found.append("domain")
        except libvirt.libvirtError:
            pass
    finally:
        conn.close()
    if drv.instance_dir(iid).exists():
        found.append(f"dir {drv.instance_dir(iid)}")
    if iid in drv.list_instances():
        found.append("listed")
    return found


async def test_boot_default_image(qemu_driver, default_image, recorder):
    g = new_guest(qemu_driver, default_image)
    t0 = time.monotonic()
    state = await qemu_driver.spawn(g)
    running = time.monotonic() - t0
    assert state == PowerState.RUNNING
    assert running < 10, f"create -> RUNNING took {running:.2f}s"
    assert qemu_driver.get_power_state(g.instance_id) == PowerState.RUNNING
    assert g.instance_id in qemu_driver.list_instances()
    await qemu_driver.wait_for_console(g.instance_id, default_image.properties["ready_marker"], timeout=60)
    out = await qemu_driver.get_console_output(g.instance_id)
    assert MARKER in out
    assert "drover guest: kernel" in out
    assert (await qemu_driver.get_console_output(g.instance_id, 1)).strip() in (MARKER, "")
    await recorder.wait_for(g.instance_id, {PowerState.RUNNING})

    [hr] = qemu_driver.host_resources()
    assert hr.hypervisor_type == "QEMU" and hr.hypervisor_version > 0 and hr.vcpus >= 1
    # what Nova's libvirt driver reports, from this host's capabilities
    cpu_info = json.loads(hr.cpu_info)
    assert cpu_info["arch"] == hr.cpu_arch and cpu_info["model"] and cpu_info["features"]
    assert (hr.cpu_arch, "qemu", "hvm") in hr.supported_instances
    if hr.cpu_arch == "x86_64" and "sse2" in cpu_info["features"]:
        assert "HW_CPU_X86_SSE2" in hr.traits

    await qemu_driver.destroy(g.instance_id)
    assert leftovers(qemu_driver, g.instance_id) == []
    assert qemu_driver.get_power_state(g.instance_id) == PowerState.NOSTATE
    await qemu_driver.destroy(g.instance_id)  # idempotent


async def test_destroyed_outside_drover_reports_shutdown(qemu_driver, default_image, recorder):
    g = new_guest(qemu_driver, default_image)
    await qemu_driver.spawn(g)
    # an operator kills the guest behind drover's back
    res = subprocess.run(
        ["virsh", "-c", qemu_driver.uri, "destroy", f"drover-{g.instance_id}"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert await recorder.wait_for(g.instance_id, {PowerState.SHUTDOWN, PowerState.CRASHED}) in (
        PowerState.SHUTDOWN,
        PowerState.CRASHED,
    )
    assert qemu_driver.get_power_state(g.instance_id) == PowerState.SHUTDOWN
    await qemu_driver.destroy(g.instance_id)
    assert leftovers(qemu_driver, g.instance_id) == []


async def test_guest_powers_itself_off_reports_shutdown(qemu_driver, default_image, recorder):
    """The guest shuts down on its own (not through drover): SHUTDOWN reaches the manager."""
    props = dict(default_image.properties)
    props["os_command_line"] += " drover.poweroff_after=0"
    img = ImageInfo(default_image.id, default_image.path, "kernel", default_image.initrd_path, props)
    g = new_guest(qemu_driver, img)
    assert await qemu_driver.spawn(g) == PowerState.RUNNING
    assert await recorder.wait_for(g.instance_id, {PowerState.SHUTDOWN}, timeout=60) == PowerState.SHUTDOWN
    assert qemu_driver.get_power_state(g.instance_id) == PowerState.SHUTDOWN
    assert "powering off" in await qemu_driver.get_console_output(g.instance_id)
    assert g.instance_id in qemu_driver.list_instances()  # stopped, still defined
    await qemu_driver.destroy(g.instance_id)
    assert leftovers(qemu_driver, g.instance_id) == []


async def test_qemu_process_killed_reports_stop(qemu_driver, default_image, recorder):
    """QEMU dies (SIGKILL) outside drover: CRASHED (event STOPPED/FAILED, state SHUTOFF/CRASHED)."""
    g = new_guest(qemu_driver, default_image)
    await qemu_driver.spawn(g)
    pidfile = Path(f"/run/libvirt/qemu/drover-{g.instance_id}.pid")
    if not pidfile.exists():
        pidfile = Path(f"/var/run/libvirt/qemu/drover-{g.instance_id}.pid")
    assert pidfile.exists(), "libvirt wrote no QEMU pid file"
    pid = int(pidfile.read_text().strip())
    import os
    import signal

    os.kill(pid, signal.SIGKILL)
    assert await recorder.wait_for(g.instance_id, {PowerState.SHUTDOWN, PowerState.CRASHED}) == PowerState.CRASHED
    assert qemu_driver.get_power_state(g.instance_id) == PowerState.CRASHED
    await qemu_driver.destroy(g.instance_id)
    assert leftovers(qemu_driver, g.instance_id) == []


@pytest.mark.parametrize("step", ["create_domain_and_network", "wait_for_boot"])
async def test_delete_during_spawn(qemu_driver, default_image, step):
    g = new_guest(qemu_driver, default_image)
    reached = asyncio.Event()

    async def on_step(s: str) -> None:
        if s == step:
            reached.set()

    task = asyncio.create_task(qemu_driver.spawn(g, on_step))
    await asyncio.wait_for(reached.wait(), 30)
    # delete arrives while the step runs: the manager cancels the build and destroys
    task.cancel()
    await qemu_driver.destroy(g.instance_id)
    with contextlib.suppress(asyncio.CancelledError, DriverError):
        await task
    await asyncio.sleep(0.2)
    assert leftovers(qemu_driver, g.instance_id) == []


async def test_delete_while_spawn_continues(qemu_driver, default_image):
    """destroy without cancelling the spawn: the spawn fails, nothing is left."""
    g = new_guest(qemu_driver, default_image)
    task = asyncio.create_task(qemu_driver.spawn(g))
    await asyncio.sleep(0.05)
    await qemu_driver.destroy(g.instance_id)
    with contextlib.suppress(DriverError):
        await task
    await asyncio.sleep(0.2)
    assert leftovers(qemu_driver, g.instance_id) == []


async def test_three_guests_at_once(qemu_driver, default_image):
    guests = [new_guest(qemu_driver, default_image) for _ in range(3)]
    assert await asyncio.gather(*(qemu_driver.spawn(g) for g in guests)) == [PowerState.RUNNING] * 3
    await asyncio.gather(*(qemu_driver.wait_for_console(g.instance_id, MARKER, 90) for g in guests))
    await asyncio.gather(*(qemu_driver.destroy(g.instance_id) for g in guests))
    for g in guests:
        assert leftovers(qemu_driver, g.instance_id) == []


@pytest.mark.usefixtures("qemu_img")
async def test_qcow2_overlay_guest_runs(qemu_driver, tmp_path):
    """A qcow2 image: cached base + overlay + virtio disk accepted by real QEMU."""
    base = tmp_path / "blank.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "32M"], check=True)
    img = ImageInfo(f"blank-{uuid.uuid4().hex[:8]}", str(base), "qcow2")
    g = new_guest(qemu_driver, img, ephemeral_gb=1)
    assert await qemu_driver.spawn(g) == PowerState.RUNNING
    assert (qemu_driver.instance_dir(g.instance_id) / "disk").is_file()
    await qemu_driver.destroy(g.instance_id)
    assert leftovers(qemu_driver, g.instance_id) == []


async def test_broken_kernel_fails_or_never_gets_ready(qemu_driver, tmp_path):
    """A bogus kernel: QEMU refuses it or the guest never prints the marker; cleanup works."""
    k = tmp_path / "vmlinuz"
    k.write_bytes(b"\0" * 4096)
    img = ImageInfo(f"bogus-{uuid.uuid4().hex[:8]}", str(k), "kernel")
    g = new_guest(qemu_driver, img)
    try:
        await qemu_driver.spawn(g)
    except DriverError:
        assert leftovers(qemu_driver, g.instance_id) == []
        return
    with pytest.raises(DriverError):
        await qemu_driver.wait_for_console(g.instance_id, MARKER, timeout=3)
    await qemu_driver.destroy(g.instance_id)
    assert leftovers(qemu_driver, g.instance_id) == []
