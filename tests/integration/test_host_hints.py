"""same_host / different_host hints end to end: the API sends server ids, the scheduler passes
the hosts holding (not holding) them, as Nova's SameHostFilter / DifferentHostFilter do."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest

from drover.localmesh import LocalMesh
from drover.v1 import api_pb2, types_pb2

from .conftest import FAKE_HOSTS, _wait_hosts, create, watch

FILTERS = ["RamFilter", "CoreFilter", "DiskFilter", "ComputeFilter", "SameHostFilter", "DifferentHostFilter"]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    m = LocalMesh.on_free_ports(
        tmp_path_factory.mktemp("hints"),
        COMPUTE__FAKE_HOSTS=str(FAKE_HOSTS),
        COMPUTE__FAKE_MEMORY_MB="8192",
        COMPUTE__FAKE_VCPUS="4",
        COMPUTE__FAKE_DISK_GB="100",
        COMPUTE__REPORT_INTERVAL="1",
        SCHEDULER__ENABLED_FILTERS=json.dumps(FILTERS),
    )
    m.start()
    _wait_hosts(m.addresses["api"], FAKE_HOSTS)
    yield m
    m.stop()


def _boot(api, name: str, image_id: str, **hints: list[str]) -> types_pb2.Server:
    server = create(api, name, image_id, scheduler_hints=api_pb2.SchedulerHints(**hints))
    final = watch(api, server.id)[-1].server
    assert final.status == types_pb2.SERVER_STATUS_ACTIVE, final.fault.message
    return final


def test_same_host_lands_beside_the_named_server_and_different_host_avoids_it(api, image) -> None:
    first = _boot(api, "anchor", image.id)
    # the RAM weigher alone would spread these over the three emptier hosts
    beside = [_boot(api, f"beside-{n}", image.id, same_host=[first.id]) for n in range(3)]
    assert {s.host for s in beside} == {first.host}
    away = [_boot(api, f"away-{n}", image.id, different_host=[first.id]) for n in range(3)]
    assert first.host not in {s.host for s in away}
    # both ways at once: beside one server, away from another
    other = away[0]
    both = _boot(api, "both", image.id, same_host=[other.id], different_host=[first.id])
    assert both.host == other.host


def test_unknown_or_deleted_servers_in_hints_are_refused(api, image) -> None:
    with pytest.raises(grpc.RpcError) as err:
        create(api, "ghost-hint", image.id, scheduler_hints=api_pb2.SchedulerHints(same_host=["no-such-server"]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    first = _boot(api, "gone", image.id)
    api.DeleteServer(api_pb2.DeleteServerRequest(id=first.id), timeout=10)
    watch(api, first.id)
    with pytest.raises(grpc.RpcError) as err:
        create(api, "after-gone", image.id, scheduler_hints=api_pb2.SchedulerHints(different_host=[first.id]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
