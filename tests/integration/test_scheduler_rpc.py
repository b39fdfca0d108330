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


def test_select_returns_the_explanation_only_when_asked(scheduler) -> None:
    spec = scheduler_pb2.RequestSpec(instance_ids=["asked"], vcpus=1, memory_mb=64, root_gb=1)
    plain = scheduler.SelectDestinations(scheduler_pb2.SelectDestinationsRequest(spec=spec), timeout=10)
    spec.instance_ids[:] = ["asked-too"]
    told = scheduler.SelectDestinations(scheduler_pb2.SelectDestinationsRequest(spec=spec, explain=True), timeout=10)
    try:
        assert len(plain.selections) == 1 and not plain.HasField("explanation")
        assert told.explanation.hosts_total == 4 and told.explanation.top_hosts
    finally:
        scheduler.ReleaseClaims(scheduler_pb2.ReleaseClaimsRequest(instance_ids=["asked", "asked-too"]), timeout=10)


def test_a_batch_places_each_request_on_its_own(scheduler) -> None:
    before = _used(scheduler)
    fits = scheduler_pb2.RequestSpec(instance_ids=["batch-a"], vcpus=1, memory_mb=256, root_gb=1)
    too_big = scheduler_pb2.RequestSpec(instance_ids=["batch-b"], vcpus=1, memory_mb=10_000_000, root_gb=1)
    also_fits = scheduler_pb2.RequestSpec(instance_ids=["batch-c", "batch-d"], vcpus=1, memory_mb=128, root_gb=1)
    resp = scheduler.SelectDestinationsBatch(scheduler_pb2.SelectDestinationsBatchRequest(requests=[
        scheduler_pb2.SelectDestinationsRequest(spec=s) for s in (fits, too_big, also_fits)]), timeout=10)
    try:
        a, b, c = resp.results
        assert a.code == grpc.StatusCode.OK.value[0] and [s.instance_id for s in a.selections] == ["batch-a"]
        assert b.code == grpc.StatusCode.FAILED_PRECONDITION.value[0] and not b.selections
        assert b.message.startswith("no valid host: 4 hosts; RamFilter rejected 4")
        assert b.explanation.summary == b.message
        assert [s.instance_id for s in c.selections] == ["batch-c", "batch-d"]
        assert _used(scheduler) == before + 256 + 2 * 128  # the failed one claimed nothing
    finally:
        scheduler.ReleaseClaims(scheduler_pb2.ReleaseClaimsRequest(
            instance_ids=["batch-a", "batch-c", "batch-d"]), timeout=10)
    assert _used(scheduler) == before


def test_a_bad_request_in_a_batch_fails_alone(scheduler) -> None:
    good = scheduler_pb2.RequestSpec(instance_ids=["batch-ok"], vcpus=1, memory_mb=64, root_gb=1)
    resp = scheduler.SelectDestinationsBatch(scheduler_pb2.SelectDestinationsBatchRequest(requests=[
        scheduler_pb2.SelectDestinationsRequest(spec=scheduler_pb2.RequestSpec()),
        scheduler_pb2.SelectDestinationsRequest(spec=good)]), timeout=10)
    try:
        bad, ok = resp.results
        assert bad.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and "spec.instance_ids" in bad.message
        assert ok.code == grpc.StatusCode.OK.value[0] and len(ok.selections) == 1
    finally:
        scheduler.ReleaseClaims(scheduler_pb2.ReleaseClaimsRequest(instance_ids=["batch-ok"]), timeout=10)


@pytest.mark.parametrize(
    ("sizes", "field"),
    [
        (dict(root_gb=2**62, ephemeral_gb=2**62), "root_gb"),  # the sum would wrap negative
        (dict(root_gb=2**40, ephemeral_gb=2**40), "root_gb + ephemeral_gb"),
        (dict(root_gb=1, ephemeral_gb=-1), "ephemeral_gb"),
        (dict(root_gb=1, swap_mb=-1), "swap_mb"),
        (dict(root_gb=1, vcpus=-2), "vcpus"),
    ],
)
def test_sizes_the_core_cannot_hold_are_invalid_and_claim_nothing(scheduler, sizes, field) -> None:
    before = _used(scheduler)
    kw = dict(instance_ids=["huge"], vcpus=1, memory_mb=64) | sizes
    spec = scheduler_pb2.RequestSpec(**kw)
    for call in (
        lambda: scheduler.SelectDestinations(scheduler_pb2.SelectDestinationsRequest(spec=spec), timeout=10),
        lambda: scheduler.ExplainSelection(scheduler_pb2.ExplainSelectionRequest(spec=spec), timeout=10),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in err.value.details()
    hosts = scheduler.ListHosts(scheduler_pb2.SchedulerServiceListHostsRequest(), timeout=10).hosts
    assert all(h.disk_gb_used >= 0 for h in hosts)
    assert _used(scheduler) == before
