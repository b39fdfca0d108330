"""Fixtures of the libvirt driver tests.

Fast tests use libvirt's in-process ``test:///default`` driver (needs libvirt-python
only). Real tests (``@pytest.mark.libvirt``) boot the default image under
``qemu:///system`` and need a running libvirtd (``scripts/setup-libvirt.sh``); the
image is built on first use by ``scripts/build-default-image.sh`` when missing.
Both kinds skip, with the reason, where their prerequisites are missing.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests import prerequisites

REPO = Path(__file__).resolve().parents[2]


def libvirt_or_skip():
    return prerequisites.libvirt_module()


@pytest.fixture
def qemu_img() -> str:
    return prerequisites.tool("qemu-img")


def new_id() -> str:
    return str(uuid.uuid4())


class Recorder:
    """Collects lifecycle callbacks; lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def __call__(self, instance_id: str, state: object) -> None:
        self.events.append((instance_id, state))

    def states(self, instance_id: str) -> list[object]:
        return [s for i, s in self.events if i == instance_id]

    async def wait_for(self, instance_id: str, states: set, timeout: float = 10.0) -> object:
        import asyncio

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            for s in self.states(instance_id):
                if s in states:
                    return s
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {states} event for {instance_id}; got {self.states(instance_id)}")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def test_driver(tmp_path, recorder):
    """A LibvirtDriver on libvirt's in-process test driver."""
    libvirt_or_skip()
    from drover.agent.libvirt.driver import LibvirtDriver

    drv = LibvirtDriver(
        uri="test:///default",
        instances_path=tmp_path / "instances",
        image_cache_path=tmp_path / "cache",
        host_name="test-host",
        boot_timeout=5.0,
        poll_interval=0.05,
    )
    drv.set_lifecycle_callback(recorder)
    await drv.init_host()
    try:
        yield drv
    finally:
        for iid in drv.list_instances():
            await drv.destroy(iid)
        await drv.cleanup_host()


@pytest.fixture
def fake_kernel_image(tmp_path):
    """A kernel image whose files exist (the test driver never reads them)."""
    from drover.agent.driver import ImageInfo

    k = tmp_path / "src" / "vmlinuz"
    k.parent.mkdir(parents=True, exist_ok=True)
    k.write_bytes(b"not really a kernel")
    i = tmp_path / "src" / "initrd.img"
    i.write_bytes(b"not really an initrd")
    return ImageInfo(
        id="fake-kernel",
        path=str(k),
        disk_format="kernel",
        initrd_path=str(i),
        properties={"os_command_line": "console=ttyS0 quiet", "ready_marker": "READY"},
    )


# ------------------------------------------------------------------ real libvirtd
SYSTEM_URI = os.environ.get("DROVER_LIBVIRT_URI", "qemu:///system")


# Real test guests carry this metadata key, so a sweep can remove what an interrupted
# run left behind without touching anyone else's drover guests on the same libvirtd.
TEST_META_KEY = "drover_test"


def sweep_test_domains(uri: str) -> list[str]:
    import libvirt

    removed = []
    conn = libvirt.open(uri)
    try:
        for dom in conn.listAllDomains(0):
            try:
                if not dom.name().startswith("drover-"):
                    continue
                xml = dom.XMLDesc(0)
                if f'key="{TEST_META_KEY}"' not in xml and f"key='{TEST_META_KEY}'" not in xml:
                    continue
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
                removed.append(dom.name())
            except libvirt.libvirtError:
                pass
    finally:
        conn.close()
    return removed


@pytest.fixture(scope="session")
def system_libvirt():
    libvirt = libvirt_or_skip()
    libvirt.registerErrorHandler(lambda _c, _e: None, None)
    try:
        conn = libvirt.open(SYSTEM_URI)
    except libvirt.libvirtError as e:
        prerequisites.missing("libvirt", f"libvirtd is not reachable at {SYSTEM_URI}: {e} (scripts/setup-libvirt.sh)")
    conn.close()
    sweep_test_domains(SYSTEM_URI)  # leftovers of an interrupted earlier run
    yield SYSTEM_URI
    left = sweep_test_domains(SYSTEM_URI)
    assert not left, f"test guests left behind: {left}"


@pytest.fixture(scope="session")
def default_image_dir(system_libvirt) -> Path:
    from drover.agent.libvirt import default_image

    d = default_image.build_dir()
    if not default_image.is_built(d):
        res = subprocess.run(
            ["bash", str(REPO / "scripts" / "build-default-image.sh"), str(d)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if res.returncode != 0 or not default_image.is_built(d):
            pytest.fail(f"building the default image failed:\n{res.stderr[-3000:]}")
    return d


@pytest.fixture
async def qemu_driver(system_libvirt, tmp_path, recorder):
    from drover.agent.libvirt.driver import LibvirtDriver

    instances = Path(os.environ.get("DROVER_TEST_INSTANCES", tmp_path / "instances"))
    drv = LibvirtDriver(
        uri=system_libvirt,
        instances_path=instances,
        image_cache_path=tmp_path / "cache",
        boot_timeout=30.0,
    )
    drv.set_lifecycle_callback(recorder)
    await drv.init_host()
    mine: list[str] = []
    drv.test_instances = mine  # type: ignore[attr-defined]
    try:
        yield drv
    finally:
        for iid in mine:
            await drv.destroy(iid)
        await drv.cleanup_host()
