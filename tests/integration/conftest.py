"""A real mesh: four service processes on loopback ports, a temporary SQLite store, the fake driver."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from drover.localmesh import LocalMesh
from drover.v1 import api_pb2, api_pb2_grpc, types_pb2

FAKE_HOSTS = 4


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    data = tmp_path_factory.mktemp("mesh")
    m = LocalMesh.on_free_ports(
        data,
        COMPUTE__FAKE_HOSTS=str(FAKE_HOSTS),
        COMPUTE__FAKE_MEMORY_MB="8192",
        COMPUTE__FAKE_VCPUS="4",
        COMPUTE__FAKE_DISK_GB="100",
        COMPUTE__REPORT_INTERVAL="1",
        CONDUCTOR__MAX_ATTEMPTS="3",
    )
    m.start()
    _wait_hosts(m, FAKE_HOSTS)
    yield m
    m.stop()
    assert not any(rc not in (0, -15) for rc in m.exited().values())


def _wait_hosts(mesh: LocalMesh, n: int, timeout: float = 30) -> None:
    with mesh.api_channel() as chan:
        stub = api_pb2_grpc.ApiServiceStub(chan)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(stub.ListHosts(api_pb2.ListHostsRequest(), timeout=5).hosts) >= n:
                return
            time.sleep(0.1)
    raise AssertionError(f"{n} hosts never reported to the scheduler")


@pytest.fixture(scope="module")
def api(mesh: LocalMesh) -> Iterator[api_pb2_grpc.ApiServiceStub]:
    """The API as the admin `drover up` writes a token for."""
    with mesh.api_channel() as chan:
        yield api_pb2_grpc.ApiServiceStub(chan)


AsCaller = Callable[..., api_pb2_grpc.ApiServiceStub]


@pytest.fixture(scope="module")
def as_caller(mesh: LocalMesh) -> Iterator[AsCaller]:
    """``as_caller(project, *roles, user=…)``: the API as a caller holding a token of that project."""
    channels: dict[tuple[str, str, tuple[str, ...]], grpc.Channel] = {}

    def stub(project: str, *roles: str, user: str = "") -> api_pb2_grpc.ApiServiceStub:
        key = (project, user or f"{project}-user", roles or ("member",))
        if key not in channels:
            channels[key] = mesh.api_channel(mesh.issue_token(key[0], key[1], list(key[2])))
        return api_pb2_grpc.ApiServiceStub(channels[key])

    yield stub
    for chan in channels.values():
        chan.close()


@pytest.fixture(scope="module")
def image_file(mesh: LocalMesh) -> Path:
    """A disk file in the mesh's image directory (where an admin may register files from)."""
    path = mesh.data_dir / "images" / "disk.raw"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * 4096)
    return path


def register_image(api: api_pb2_grpc.ApiServiceStub, path: Path, name: str, **props: str) -> types_pb2.Image:
    return api.CreateImage(api_pb2.CreateImageRequest(name=name, path=str(path), disk_format="raw",
                                                      properties=props), timeout=30).image


@pytest.fixture(scope="module")
def image(api: api_pb2_grpc.ApiServiceStub, image_file: Path) -> types_pb2.Image:
    return register_image(api, image_file, "test-image")


def watch(api: api_pb2_grpc.ApiServiceStub, server_id: str, *, follow: bool = False,
          timeout: float = 60) -> list[api_pb2.WatchServerResponse]:
    return list(api.WatchServer(api_pb2.WatchServerRequest(id=server_id, follow=follow), timeout=timeout))


def create(api: api_pb2_grpc.ApiServiceStub, name: str, image_id: str, flavor: str = "m1.tiny",
           **kw: Any) -> types_pb2.Server:
    return api.CreateServer(api_pb2.CreateServerRequest(name=name, flavor_ref=flavor, image_ref=image_id, **kw),
                            timeout=30).server


def count_servers(api: api_pb2_grpc.ApiServiceStub) -> int:
    n, token = 0, ""
    while True:
        resp = api.ListServers(api_pb2.ListServersRequest(page_size=1000, page_token=token, include_deleted=True,
                                                          all_projects=True), timeout=30)
        n += len(resp.servers)
        token = resp.next_page_token
        if not token:
            return n
