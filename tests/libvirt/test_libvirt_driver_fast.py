"""LibvirtDriver against libvirt's in-process test driver (``test:///default``).

The test driver defines and "runs" domains without QEMU (it never reads the kernel or
disks), so these check the driver's bookkeeping: spawn steps, XML accepted by
libvirt, lifecycle events, power states, delete during spawn, cleanup.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from drover.agent.driver import SPAWN_STEPS, DriverError, GuestSpec, ImageInfo, PowerState
from tests import prerequisites


def new_id() -> str:
    return str(uuid.uuid4())


def libvirt_or_skip():
    return prerequisites.libvirt_module()


def spec(image: ImageInfo, iid: str | None = None, **kw) -> GuestSpec:
    base = dict(instance_id=iid or new_id(), name="t", host="test-host", vcpus=1, memory_mb=128, root_gb=1, image=image)
    base.update(kw)
    return GuestSpec(**base)


def external_conn():
    libvirt = libvirt_or_skip()
    return libvirt.open("test:///default")


def assert_gone(drv, iid: str) -> None:
    assert iid not in drv.list_instances()
    assert drv.get_power_state(iid) == PowerState.NOSTATE
    assert not drv.instance_dir(iid).exists()


async def test_host_resources(test_driver):
    [hr] = test_driver.host_resources()
    assert hr.host == "test-host"
    assert hr.hypervisor_type == "QEMU"
    assert hr.vcpus > 0 and hr.memory_mb > 0 and hr.disk_gb >= 0
    assert hr.capabilities["virt_type"] == "qemu"


async def test_spawn_and_destroy_kernel_image(test_driver, fake_kernel_image, recorder):
    g = spec(fake_kernel_image)
    steps: list[str] = []

    async def on_step(step: str) -> None:
        steps.append(step)

    state = await test_driver.spawn(g, on_step)
    assert state == PowerState.RUNNING
    assert steps == list(SPAWN_STEPS)
    assert g.instance_id in test_driver.list_instances()
    assert test_driver.get_power_state(g.instance_id) == PowerState.RUNNING
    idir = test_driver.instance_dir(g.instance_id)
    assert (idir / "kernel").read_bytes() == b"not really a kernel"
    assert (idir / "initrd").is_file()
    # the image went through the cache, keyed by image id
    assert test_driver.image_cache.cached_ids() == ["fake-kernel"]

    # the definition libvirt stored is ours
    conn = external_conn()
    dom = ET.fromstring(conn.lookupByName(f"drover-{g.instance_id}").XMLDesc(0))
    assert dom.findtext("uuid") == g.instance_id
    assert dom.findtext("os/cmdline") == "console=ttyS0 quiet"
    assert dom.find("devices/serial/source").get("path") == str(idir / "console.log")
    conn.close()

    await recorder.wait_for(g.instance_id, {PowerState.RUNNING})
    await test_driver.destroy(g.instance_id)
    assert_gone(test_driver, g.instance_id)
    await test_driver.destroy(g.instance_id)  # idempotent
    # our own destroy is not reported as a power-state change
    await asyncio.sleep(0.2)
    assert PowerState.SHUTDOWN not in recorder.states(g.instance_id)
    # the cache survives instance deletion
    assert test_driver.image_cache.cached_ids() == ["fake-kernel"]


async def test_destroy_unknown_instance_is_a_noop(test_driver):
    await test_driver.destroy(new_id())


async def test_stopped_outside_drover_reports_shutdown(test_driver, fake_kernel_image, recorder):
    g = spec(fake_kernel_image)
    await test_driver.spawn(g)
    conn = external_conn()
    conn.lookupByName(f"drover-{g.instance_id}").destroy()
    conn.close()
    assert await recorder.wait_for(g.instance_id, {PowerState.SHUTDOWN}) == PowerState.SHUTDOWN
    assert test_driver.get_power_state(g.instance_id) == PowerState.SHUTDOWN
    assert g.instance_id in test_driver.list_instances()  # still defined
    await test_driver.destroy(g.instance_id)
    assert_gone(test_driver, g.instance_id)


@pytest.mark.parametrize("step", SPAWN_STEPS)
async def test_cancel_spawn_at_each_step_then_destroy(test_driver, fake_kernel_image, step):
    g = spec(fake_kernel_image)
    reached = asyncio.Event()

    async def on_step(s: str) -> None:
        if s == step:
            reached.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(test_driver.spawn(g, on_step))
    await asyncio.wait_for(reached.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await test_driver.destroy(g.instance_id)
    assert_gone(test_driver, g.instance_id)


async def test_destroy_while_spawning_wins(test_driver, fake_kernel_image):
    """Delete arrives between steps of a spawn that is not cancelled: spawn fails, nothing is left."""
    g = spec(fake_kernel_image)
    gate = asyncio.Event()

    async def on_step(s: str) -> None:
        if s == "create_domain_and_network":
            await gate.wait()

    task = asyncio.create_task(test_driver.spawn(g, on_step))
    await asyncio.sleep(0.1)
    await test_driver.destroy(g.instance_id)
    gate.set()
    with pytest.raises(DriverError, match="deleted"):
        await task
    assert_gone(test_driver, g.instance_id)


async def test_destroy_races_blocking_step(test_driver, fake_kernel_image):
    """destroy issued while a blocking step runs in its thread: either order, nothing leaks."""
    for _ in range(10):
        g = spec(fake_kernel_image)
        task = asyncio.create_task(test_driver.spawn(g))
        await asyncio.sleep(0)  # let the spawn reach its first blocking step
        await test_driver.destroy(g.instance_id)
        with contextlib.suppress(DriverError):
            await task
        await asyncio.sleep(0)
        assert_gone(test_driver, g.instance_id)


async def test_respawn_after_destroy(test_driver, fake_kernel_image):
    g = spec(fake_kernel_image)
    await test_driver.spawn(g)
    await test_driver.destroy(g.instance_id)
    assert await test_driver.spawn(g) == PowerState.RUNNING
    await test_driver.destroy(g.instance_id)
    assert_gone(test_driver, g.instance_id)


async def test_missing_image_fails_cleanly(test_driver, tmp_path):
    img = ImageInfo("missing", str(tmp_path / "nope"), "kernel", str(tmp_path / "nope.initrd"))
    g = spec(img)
    with pytest.raises(DriverError, match="does not exist"):
        await test_driver.spawn(g)
    assert_gone(test_driver, g.instance_id)


async def test_unsupported_disk_format(test_driver, tmp_path):
    f = tmp_path / "x.iso"
    f.write_bytes(b"x")
    g = spec(ImageInfo("iso", str(f), "iso"))
    with pytest.raises(DriverError, match="unsupported"):
        await test_driver.spawn(g)
    assert_gone(test_driver, g.instance_id)


async def test_console_output_and_marker(test_driver, fake_kernel_image):
    g = spec(fake_kernel_image)
    await test_driver.spawn(g)
    console = test_driver.console_path(g.instance_id)
    assert await test_driver.get_console_output(g.instance_id) == ""

    async def guest_writes() -> None:
        await asyncio.sleep(0.2)
        with open(console, "ab") as f:
            f.write(b"line 1\r\nline 2\nREA")
        await asyncio.sleep(0.2)
        with open(console, "ab") as f:
            f.write(b"DY\nline 4\n")

    writer = asyncio.create_task(guest_writes())
    waited = await test_driver.wait_for_console(g.instance_id, "READY", timeout=5)
    await writer
    assert 0.3 <= waited < 5
    assert await test_driver.get_console_output(g.instance_id, 2) == "READY\nline 4"
    assert "line 1\nline 2" in await test_driver.get_console_output(g.instance_id)
    with pytest.raises(DriverError, match="did not appear"):
        await test_driver.wait_for_console(g.instance_id, "NEVER", timeout=0.3)
    await test_driver.destroy(g.instance_id)
    with pytest.raises(DriverError):
        await test_driver.get_console_output(g.instance_id)


async def test_wait_for_console_fails_when_guest_stops(test_driver, fake_kernel_image):
    g = spec(fake_kernel_image)
    await test_driver.spawn(g)
    conn = external_conn()
    conn.lookupByName(f"drover-{g.instance_id}").destroy()
    conn.close()
    with pytest.raises(DriverError, match="SHUTDOWN"):
        await test_driver.wait_for_console(g.instance_id, "READY", timeout=5)


async def test_wait_for_boot_fails_when_guest_is_not_running(test_driver, fake_kernel_image):
    g = spec(fake_kernel_image)
    await test_driver.spawn(g)
    conn = external_conn()
    conn.lookupByName(f"drover-{g.instance_id}").destroy()
    conn.close()
    with pytest.raises(DriverError, match="SHUTDOWN"):
        await test_driver.wait_for_boot(g)


async def test_concurrent_spawns(test_driver, fake_kernel_image):
    guests = [spec(fake_kernel_image) for _ in range(8)]
    states = await asyncio.gather(*(test_driver.spawn(g) for g in guests))
    assert states == [PowerState.RUNNING] * 8
    assert {g.instance_id for g in guests} <= set(test_driver.list_instances())
    await asyncio.gather(*(test_driver.destroy(g.instance_id) for g in guests))
    for g in guests:
        assert_gone(test_driver, g.instance_id)


async def test_invalid_instance_id(test_driver):
    with pytest.raises(DriverError):
        await test_driver.destroy("../etc")


# ----------------------------------------------------------------- disk images
needs_qemu_img = pytest.mark.usefixtures("qemu_img")  # tests/libvirt/conftest.py


def make_image(path: Path, fmt: str, size: str) -> None:
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(path), size], check=True)


def qemu_img_info(path: Path) -> dict:
    out = subprocess.run(
        ["qemu-img", "info", "-U", "--output=json", str(path)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


@needs_qemu_img
@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
async def test_overlay_on_cached_base(test_driver, tmp_path, fmt):
    src = tmp_path / f"base.{fmt}"
    make_image(src, fmt, "64M")
    img = ImageInfo(f"img-{fmt}", str(src), fmt)
    g = spec(img, root_gb=1, ephemeral_gb=1, swap_mb=32)
    assert await test_driver.spawn(g) == PowerState.RUNNING
    idir = test_driver.instance_dir(g.instance_id)
    info = qemu_img_info(idir / "disk")
    assert info["format"] == "qcow2"
    assert info["virtual-size"] == 1024**3  # grown to the flavor's root_gb
    cached = test_driver.image_cache.path / img.id / "base"
    assert Path(info["backing-filename"]) == cached
    assert info.get("backing-filename-format") == fmt
    assert qemu_img_info(idir / "disk.eph0")["virtual-size"] == 1024**3
    assert qemu_img_info(idir / "disk.swap")["virtual-size"] == 32 * 1024**2
    conn = external_conn()
    dom = ET.fromstring(conn.lookupByName(f"drover-{g.instance_id}").XMLDesc(0))
    conn.close()
    assert [d.find("source").get("file") for d in dom.findall("devices/disk")] == [
        str(idir / "disk"),
        str(idir / "disk.eph0"),
        str(idir / "disk.swap"),
    ]
    # a second instance reuses the cached base
    g2 = spec(img, root_gb=0)
    await test_driver.spawn(g2)
    assert qemu_img_info(test_driver.instance_dir(g2.instance_id) / "disk")["virtual-size"] == 64 * 1024**2
    await test_driver.destroy(g.instance_id)
    await test_driver.destroy(g2.instance_id)
    assert_gone(test_driver, g.instance_id)
    assert cached.is_file()


@needs_qemu_img
async def test_flavor_disk_smaller_than_image(test_driver, tmp_path):
    src = tmp_path / "big.qcow2"
    make_image(src, "qcow2", "2G")
    g = spec(ImageInfo("big", str(src), "qcow2"), root_gb=1)
    with pytest.raises(DriverError, match="smaller"):
        await test_driver.spawn(g)
    assert_gone(test_driver, g.instance_id)


@needs_qemu_img
async def test_wrong_registered_format(test_driver, tmp_path):
    src = tmp_path / "disk.raw"
    make_image(src, "raw", "16M")
    g = spec(ImageInfo("liar", str(src), "qcow2"), root_gb=1)
    with pytest.raises(DriverError, match="registered as qcow2"):
        await test_driver.spawn(g)
    assert_gone(test_driver, g.instance_id)


def test_event_mapping():
    libvirt = libvirt_or_skip()
    from drover.agent.libvirt.events import domain_state_to_power_state, event_to_power_state

    assert event_to_power_state(libvirt.VIR_DOMAIN_EVENT_STARTED, 0) == PowerState.RUNNING
    assert event_to_power_state(libvirt.VIR_DOMAIN_EVENT_RESUMED, 0) == PowerState.RUNNING
    assert event_to_power_state(libvirt.VIR_DOMAIN_EVENT_SUSPENDED, 0) == PowerState.PAUSED
    assert (
        event_to_power_state(libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED)
        == PowerState.SHUTDOWN
    )
    assert (
        event_to_power_state(libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED)
        == PowerState.CRASHED
    )
    assert event_to_power_state(libvirt.VIR_DOMAIN_EVENT_CRASHED, 0) == PowerState.CRASHED
    assert event_to_power_state(libvirt.VIR_DOMAIN_EVENT_DEFINED, 0) is None
    assert domain_state_to_power_state(libvirt.VIR_DOMAIN_SHUTOFF) == PowerState.SHUTDOWN
    assert (
        domain_state_to_power_state(libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED)
        == PowerState.SHUTDOWN
    )
    assert (
        domain_state_to_power_state(libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_CRASHED)
        == PowerState.CRASHED
    )
    assert domain_state_to_power_state(libvirt.VIR_DOMAIN_CRASHED) == PowerState.CRASHED
    assert domain_state_to_power_state(libvirt.VIR_DOMAIN_BLOCKED) == PowerState.RUNNING


async def test_relative_paths_become_absolute(tmp_path, monkeypatch, fake_kernel_image):
    libvirt_or_skip()
    from drover.agent.libvirt.driver import LibvirtDriver

    monkeypatch.chdir(tmp_path)
    drv = LibvirtDriver(uri="test:///default", instances_path="rel/instances", boot_timeout=5)
    await drv.init_host()
    try:
        g = spec(fake_kernel_image)
        xml = await drv.get_guest_xml(g)
        dom = ET.fromstring(xml)
        assert dom.findtext("os/kernel") == str(tmp_path / "rel" / "instances" / g.instance_id / "kernel")
        assert drv.image_cache.path == tmp_path / "rel" / "instances" / "_base"
        assert await drv.spawn(g) == PowerState.RUNNING
        await drv.destroy(g.instance_id)
        assert_gone(drv, g.instance_id)
    finally:
        await drv.cleanup_host()


async def test_init_cleanup_init_again(tmp_path, fake_kernel_image, recorder):
    libvirt_or_skip()
    from drover.agent.libvirt.driver import LibvirtDriver

    drv = LibvirtDriver(uri="test:///default", instances_path=tmp_path / "i", boot_timeout=5)
    drv.set_lifecycle_callback(recorder)
    await drv.init_host()
    await drv.cleanup_host()
    await drv.cleanup_host()  # idempotent
    with pytest.raises(DriverError):
        await drv.get_console_output(new_id())
    await drv.init_host()
    try:
        g = spec(fake_kernel_image)
        assert await drv.spawn(g) == PowerState.RUNNING
        await recorder.wait_for(g.instance_id, {PowerState.RUNNING})  # events after re-init
        await drv.destroy(g.instance_id)
        assert_gone(drv, g.instance_id)
    finally:
        await drv.cleanup_host()
