"""Failures between real processes: a conductor killed mid-flight, quotas, stuck builds."""

from __future__ import annotations

import signal
import time

import grpc
import pytest

from drover.localmesh import LocalMesh
from drover.services.common import states
from drover.v1 import api_pb2, api_pb2_grpc, types_pb2
from tests.integration.conftest import _wait_hosts


@pytest.fixture()
def small_mesh(tmp_path):
    m = LocalMesh.on_free_ports(tmp_path, COMPUTE__FAKE_HOSTS="3", COMPUTE__FAKE_STEP_SECONDS="0.1",
                                COMPUTE__REPORT_INTERVAL="1", QUOTA__INSTANCES="40")
    m.start()
    _wait_hosts(m, 3)
    yield m
    m.stop()


def _image(api, tmp_path) -> str:
    path = tmp_path / "images" / "disk.raw"  # the mesh's data dir is tmp_path: its image directory
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"\0" * 1024)
    return api.CreateImage(api_pb2.CreateImageRequest(name="img", path=str(path)), timeout=30).image.id


def test_conductor_killed_mid_flight_casts_replayed_without_duplicate_builds(small_mesh, tmp_path) -> None:
    with small_mesh.api_channel() as chan:
        api = api_pb2_grpc.ApiServiceStub(chan)
        image_id = _image(api, tmp_path)
        ids = []
        for i in range(30):
            ids.append(api.CreateServer(api_pb2.CreateServerRequest(name=f"c{i}", flavor_ref="m1.tiny",
                                                                    image_ref=image_id), timeout=10).server.id)
            if i == 15:
                # Crash the conductor while builds and updates are in flight; casts pile up unacked.
                small_mesh.stop_service("conductor", sig=signal.SIGKILL)
        time.sleep(0.5)
        small_mesh.start_service("conductor")
        finals = {}
        for sid in ids:
            finals[sid] = list(api.WatchServer(api_pb2.WatchServerRequest(id=sid), timeout=60))[-1].server
        assert {types_pb2.ServerStatus.Name(s.status) for s in finals.values()} == {"SERVER_STATUS_ACTIVE"}
        for sid in ids:
            action = api.ListServerActions(api_pb2.ListServerActionsRequest(server_id=sid), timeout=10).actions[0]
            names = [e.event for e in action.events]
            assert names.count(states.EV_BUILD) == 1, f"{sid} built more than once: {names}"
            assert names.count(states.EV_SCHEDULE) == 1, names
        hosts = api.ListHosts(api_pb2.ListHostsRequest(), timeout=10).hosts
        assert sum(h.memory_mb_used for h in hosts) == 30 * 512, "claims must match servers exactly"


def test_quota_exceeded_is_resource_exhausted_and_stores_nothing(small_mesh, tmp_path) -> None:
    with small_mesh.api_channel() as chan:
        api = api_pb2_grpc.ApiServiceStub(chan)
        image_id = _image(api, tmp_path)
        with pytest.raises(grpc.RpcError) as err:
            api.CreateServer(api_pb2.CreateServerRequest(name="many", flavor_ref="m1.tiny", image_ref=image_id,
                                                         min_count=41, max_count=41), timeout=10)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "instances" in err.value.details()
        assert api.ListServers(api_pb2.ListServersRequest(include_deleted=True), timeout=10).servers == []
