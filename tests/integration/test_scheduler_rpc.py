"""SchedulerService over gRPC: explain without claiming, and bad requests."""

from __future__ import annotations

import grpc
import pytest

from drover.v1 import scheduler_pb2, scheduler_pb2_grpc


@pytest.fixture(scope="module")
def scheduler(mesh):
    with grpc.insecure_channel(mesh.addresses["scheduler"]) as chan:
        yield scheduler_pb2_grpc.SchedulerServiceStub(chan)


def _used(scheduler) -> int:
    hosts = scheduler.ListHosts(scheduler_pb2.SchedulerServiceListHostsRequest(), timeout=10).hosts
    return sum(h.memory_mb_used for h in hosts)


def test_explain_a_request_that_fits_claims_nothing(scheduler) -> None:
    before = _used(scheduler)
    spec = scheduler_pb2.RequestSpec(instance_ids=["hypothetical"], vcpus=1, memory_mb=1024, root_gb=1)
    resp = scheduler.ExplainSelection(scheduler_pb2.ExplainSelectionRequest(spec=spec), timeout=10)
    assert [s.instance_id for s in resp.selections] == ["hypothetical"]
    assert resp.selections[0].host.startswith("fake-host-")
    assert resp.explanation.hosts_total == 4 and resp.explanation.hosts_passed >= 1
    assert resp.explanation.top_hosts and "RAMWeigher" in resp.explanation.top_hosts[0].weights
    assert _used(scheduler) == before, "explain must not claim"


def test_explain_no_valid_host_names_the_filters(scheduler) -> None:
    spec = scheduler_pb2.RequestSpec(instance_ids=["x"], vcpus=1, memory_mb=10_000_000, availability_zone="nova")
    resp = scheduler.ExplainSelection(scheduler_pb2.ExplainSelectionRequest(spec=spec), timeout=10)
    assert list(resp.selections) == []
    assert resp.explanation.summary.startswith("no valid host: 4 hosts; RamFilter rejected 4")
    ram = next(r for r in resp.explanation.rejections if r.filter == "RamFilter")
    assert ram.rejected == 4 and ram.sample_reasons


def test_select_with_no_instances_is_invalid(scheduler) -> None:
    with pytest.raises(grpc.RpcError) as err:
        scheduler.SelectDestinations(scheduler_pb2.SelectDestinationsRequest(spec=scheduler_pb2.RequestSpec()),
                                     timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
