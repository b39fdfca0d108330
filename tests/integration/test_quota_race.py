"""Quota under a race: 100 concurrent creates at an instance quota of 5, spread over two API
processes on one store, never make more than 5 servers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from drover.localmesh import LocalMesh
from drover.v1 import api_pb2, api_pb2_grpc
from tests.integration.conftest import _wait_hosts


@pytest.fixture
def two_apis(tmp_path):
    mesh = LocalMesh.on_free_ports(tmp_path, COMPUTE__FAKE_HOSTS="4", COMPUTE__REPORT_INTERVAL="1",
                                   QUOTA__INSTANCES="5")
    mesh.start()
    try:
        mesh.start_extra_api()
        _wait_hosts(mesh, 4)
        yield mesh
    finally:
        mesh.stop()


def test_concurrent_creates_through_two_apis_never_exceed_the_quota(two_apis, tmp_path) -> None:
    mesh = two_apis
    token = mesh.issue_token("racers", "r", ["member"])
    image = tmp_path / "images" / "disk.raw"
    image.parent.mkdir(exist_ok=True)
    image.write_bytes(b"\0" * 4096)
    with mesh.api_channel() as admin_chan:
        image_id = api_pb2_grpc.ApiServiceStub(admin_chan).CreateImage(api_pb2.CreateImageRequest(
            name="race", path=str(image), disk_format="raw"), timeout=30).image.id
    channels = [mesh.api_channel(token, api) for api in ("api", "api2")]
    stubs = [api_pb2_grpc.ApiServiceStub(c) for c in channels]

    def create(i: int) -> grpc.StatusCode:
        try:
            stubs[i % 2].CreateServer(api_pb2.CreateServerRequest(name=f"r{i}", flavor_ref="m1.tiny",
                                                                  image_ref=image_id), timeout=60)
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            return exc.code()

    try:
        with ThreadPoolExecutor(max_workers=32) as pool:
            codes = list(pool.map(create, range(100)))
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, set(codes)
        assert codes.count(grpc.StatusCode.OK) == 5
        for stub in stubs:  # both APIs see the same 5
            listed = stub.ListServers(api_pb2.ListServersRequest(page_size=1000), timeout=10).servers
            assert len(listed) == 5
    finally:
        for c in channels:
            c.close()
