"""Real QEMU guests through the whole mesh: API → conductor → scheduler → compute → libvirt.

Needs libvirtd with QEMU (scripts/setup.sh). Skips without it, unless
DROVER_REQUIRE_LIBVIRT=1 (CI sets it), where a missing libvirt is a failure.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from drover.localmesh import LocalMesh
from drover.v1 import api_pb2, api_pb2_grpc, types_pb2
from tests.integration.conftest import _wait_hosts

pytestmark = pytest.mark.libvirt
REPO = Path(__file__).resolve().parents[2]


def _libvirt_conn():
    reason = ""
    try:
        import libvirt

        conn = libvirt.open("qemu:///system")
        if conn is not None:
            return conn
        reason = "cannot connect to qemu:///system"
    except ImportError:
        reason = "libvirt-python is not installed"
    except Exception as exc:  # libvirt.libvirtError: daemon not running
        reason = f"libvirtd is not reachable: {exc}"
    if os.environ.get("DROVER_REQUIRE_LIBVIRT") == "1":
        pytest.fail(f"{reason} (DROVER_REQUIRE_LIBVIRT=1)")
    pytest.skip(f"{reason} (scripts/setup.sh sets it up)")


@pytest.fixture(scope="module")
def conn():
    c = _libvirt_conn()
    yield c
    c.close()


@pytest.fixture(scope="module")
def real_mesh(conn, tmp_path_factory):
    from drover.agent.libvirt import default_image

    kernel, initrd = default_image.kernel_path(), default_image.build_dir() / "initrd.img"
    if not (kernel.is_file() and initrd.is_file()):
        subprocess.run(["bash", str(REPO / "scripts" / "build-default-image.sh")], check=True)
    data = tmp_path_factory.mktemp("libvirt-mesh")
    host = f"drover-test-{uuid.uuid4().hex[:8]}"
    mesh = LocalMesh.on_free_ports(data, COMPUTE__DRIVER="libvirt", COMPUTE__HOST=host,
                                   COMPUTE__INSTANCES_PATH=str(data / "instances"), COMPUTE__REPORT_INTERVAL="1")
    mesh.start()
    try:
        _wait_hosts(mesh, 1)
        with mesh.api_channel() as chan:
            api = api_pb2_grpc.ApiServiceStub(chan)
            image = api.CreateImage(api_pb2.CreateImageRequest(
                name="drover-tiny", path=str(kernel), initrd_path=str(initrd), disk_format="kernel",
                properties=default_image.PROPERTIES), timeout=60).image
            yield mesh, api, image, host, data
    finally:
        mesh.stop()


def _watch(api, sid: str, follow: bool = False, timeout: float = 120):
    return list(api.WatchServer(api_pb2.WatchServerRequest(id=sid, follow=follow), timeout=timeout))


def _wait_console(api, sid: str, marker: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = api.GetConsoleOutput(api_pb2.GetConsoleOutputRequest(id=sid), timeout=10).output
        if marker in out:
            return out
        time.sleep(0.25)
    raise AssertionError(f"{marker!r} never appeared on {sid}'s console:\n{out[-2000:]}")


def _domains(conn) -> set[str]:
    return {d.name() for d in conn.listAllDomains()}


def test_three_guests_boot_concurrently_and_leave_nothing_behind(real_mesh, conn) -> None:
    _mesh, api, image, host, data = real_mesh
    resp = api.CreateServer(api_pb2.CreateServerRequest(name="guest", flavor_ref="m1.tiny", image_ref=image.id,
                                                        min_count=3, max_count=3), timeout=30)
    ids = [s.id for s in resp.servers]
    with ThreadPoolExecutor(3) as pool:
        finals = list(pool.map(lambda sid: _watch(api, sid)[-1].server, ids))
    for server in finals:
        assert server.status == types_pb2.SERVER_STATUS_ACTIVE, server.fault.message
        assert server.power_state == types_pb2.POWER_STATE_RUNNING
        assert server.host == host
    assert {f"drover-{sid}" for sid in ids} <= _domains(conn)
    with ThreadPoolExecutor(3) as pool:
        consoles = list(pool.map(lambda sid: _wait_console(api, sid, image.properties["ready_marker"]), ids))
    assert all("DROVER-GUEST-READY" in c for c in consoles)

    for sid in ids:
        api.DeleteServer(api_pb2.DeleteServerRequest(id=sid), timeout=10)
    for sid in ids:
        assert _watch(api, sid, follow=True)[-1].server.vm_state == types_pb2.VM_STATE_DELETED
    assert not {f"drover-{sid}" for sid in ids} & _domains(conn), "a domain was left behind"
    for sid in ids:
        assert not (data / "instances" / sid).exists(), "an instance directory was left behind"
    deadline = time.monotonic() + 10
    while True:
        (h,) = [h for h in api.ListHosts(api_pb2.ListHostsRequest(), timeout=10).hosts if h.host == host]
        if h.memory_mb_used == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (h.memory_mb_used, h.vcpus_used, h.disk_gb_used) == (0, 0, 0), "a claim was left behind"


def test_guest_killed_outside_drover_shows_up_stopped(real_mesh, conn) -> None:
    _mesh, api, image, _host, _data = real_mesh
    server = api.CreateServer(api_pb2.CreateServerRequest(name="victim", flavor_ref="m1.tiny",
                                                          image_ref=image.id), timeout=30).server
    assert _watch(api, server.id)[-1].server.status == types_pb2.SERVER_STATUS_ACTIVE
    conn.lookupByName(f"drover-{server.id}").destroy()  # behind drover's back, like `virsh destroy`
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        s = api.GetServer(api_pb2.GetServerRequest(id=server.id), timeout=10).server
        if s.power_state in (types_pb2.POWER_STATE_SHUTDOWN, types_pb2.POWER_STATE_CRASHED):
            break
        time.sleep(0.2)
    assert s.power_state in (types_pb2.POWER_STATE_SHUTDOWN, types_pb2.POWER_STATE_CRASHED)
    assert s.status == types_pb2.SERVER_STATUS_SHUTOFF
    api.DeleteServer(api_pb2.DeleteServerRequest(id=server.id), timeout=10)
    assert _watch(api, server.id, follow=True)[-1].server.vm_state == types_pb2.VM_STATE_DELETED
    assert f"drover-{server.id}" not in _domains(conn)


def test_delete_while_spawning_a_real_guest(real_mesh, conn) -> None:
    _mesh, api, image, _host, data = real_mesh
    server = api.CreateServer(api_pb2.CreateServerRequest(name="hasty", flavor_ref="m1.tiny",
                                                          image_ref=image.id), timeout=30).server
    for ev in api.WatchServer(api_pb2.WatchServerRequest(id=server.id, follow=True), timeout=60):
        if ev.server.task_state == types_pb2.TASK_STATE_SPAWNING:
            break
    api.DeleteServer(api_pb2.DeleteServerRequest(id=server.id), timeout=10)
    assert _watch(api, server.id, follow=True)[-1].server.vm_state == types_pb2.VM_STATE_DELETED
    time.sleep(0.5)
    assert f"drover-{server.id}" not in _domains(conn)
    assert not (data / "instances" / server.id).exists()
