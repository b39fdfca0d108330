"""Server groups over real gRPC: hard policies hold across separate, concurrent requests."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from drover.v1 import api_pb2, types_pb2
from tests.integration.conftest import FAKE_HOSTS, count_servers, create, watch
from tests.integration.test_bad_input import _fields

# Pack (Nova's ram_weight_multiplier < 0, the only weigher): without the anti-affinity filter every
# server of a group would land on the fullest host, so spreading is the filter's doing, not the weigher's.
MESH_SETTINGS = {"SCHEDULER__WEIGHERS": '{"RAMWeigher": -1.0}'}


def _group(api, name: str, policy: str, max_server_per_host: int = 0) -> types_pb2.ServerGroup:
    return api.CreateServerGroup(api_pb2.CreateServerGroupRequest(
        name=name, policy=policy, max_server_per_host=max_server_per_host), timeout=10).server_group


def _boot(api, name: str, image_id: str, group_id: str, **kw) -> types_pb2.Server:
    server = create(api, name, image_id, scheduler_hints=api_pb2.SchedulerHints(group=group_id), **kw)
    return watch(api, server.id)[-1].server


def test_anti_affinity_spreads_concurrent_boots_then_explains_the_one_that_cannot_fit(api, image) -> None:
    group = _group(api, "spread", "anti-affinity")
    with ThreadPoolExecutor(FAKE_HOSTS) as pool:  # separate requests, all at once
        finals = list(pool.map(lambda n: _boot(api, f"spread-{n}", image.id, group.id), range(FAKE_HOSTS)))
    assert [f.status for f in finals] == [types_pb2.SERVER_STATUS_ACTIVE] * FAKE_HOSTS
    assert len({f.host for f in finals}) == FAKE_HOSTS

    extra = _boot(api, "spread-extra", image.id, group.id)
    assert extra.status == types_pb2.SERVER_STATUS_ERROR
    assert f"ServerGroupAntiAffinityFilter rejected {FAKE_HOSTS}" in extra.fault.message

    shown = api.GetServerGroup(api_pb2.GetServerGroupRequest(id=group.id), timeout=10).server_group
    assert set(shown.members) == {f.id for f in finals} | {extra.id}
    api.DeleteServer(api_pb2.DeleteServerRequest(id=extra.id), timeout=10)
    watch(api, extra.id)
    shown = api.GetServerGroup(api_pb2.GetServerGroupRequest(id=group.id), timeout=10).server_group
    assert set(shown.members) == {f.id for f in finals}  # a deleted server leaves its group


def test_anti_affinity_max_server_per_host_lets_members_share_a_host(api, image) -> None:
    group = _group(api, "two-per-host", "anti-affinity", max_server_per_host=2)
    assert group.max_server_per_host == 2
    n = FAKE_HOSTS + 1  # more members than hosts: some host must run two
    resp = api.CreateServer(api_pb2.CreateServerRequest(
        name="pair", flavor_ref="m1.tiny", image_ref=image.id, min_count=n, max_count=n,
        scheduler_hints=api_pb2.SchedulerHints(group=group.id)), timeout=30)
    finals = [watch(api, s.id)[-1].server for s in resp.servers]
    assert [f.status for f in finals] == [types_pb2.SERVER_STATUS_ACTIVE] * n
    hosts = [f.host for f in finals]
    assert max(hosts.count(h) for h in hosts) == 2
    for f in finals:  # leave the project's quota to the other tests
        api.DeleteServer(api_pb2.DeleteServerRequest(id=f.id), timeout=10)
    for f in finals:
        watch(api, f.id)


def test_affinity_keeps_a_group_on_one_host_across_requests_and_within_one(api, image) -> None:
    group = _group(api, "together", "affinity")
    first = _boot(api, "together-1", image.id, group.id)
    assert first.status == types_pb2.SERVER_STATUS_ACTIVE
    resp = api.CreateServer(api_pb2.CreateServerRequest(
        name="together-more", flavor_ref="m1.tiny", image_ref=image.id, min_count=2, max_count=2,
        scheduler_hints=api_pb2.SchedulerHints(group=group.id)), timeout=30)
    finals = [watch(api, s.id)[-1].server for s in resp.servers]
    assert [f.status for f in finals] == [types_pb2.SERVER_STATUS_ACTIVE] * 2
    assert {f.host for f in finals} == {first.host}


def test_bad_groups_are_refused_with_field_details(api) -> None:
    for request, field in ((api_pb2.CreateServerGroupRequest(name="g", policy="clumped"), "policy"),
                           (api_pb2.CreateServerGroupRequest(name=" ", policy="affinity"), "name"),
                           (api_pb2.CreateServerGroupRequest(name="g", policy="anti-affinity", max_server_per_host=-1),
                            "max_server_per_host"),
                           (api_pb2.CreateServerGroupRequest(name="g", policy="affinity", max_server_per_host=2),
                            "max_server_per_host")):
        with pytest.raises(grpc.RpcError) as err:
            api.CreateServerGroup(request, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert _fields(err.value) == {field}
    with pytest.raises(grpc.RpcError) as err:
        api.GetServerGroup(api_pb2.GetServerGroupRequest(id="no-such-group"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_group_of_another_project_or_a_deleted_one_cannot_be_joined(api, as_caller, image) -> None:
    other, mine = as_caller("other"), as_caller("mine")
    theirs = other.CreateServerGroup(api_pb2.CreateServerGroupRequest(name="theirs", policy="affinity"),
                                     timeout=10).server_group
    ours = mine.CreateServerGroup(api_pb2.CreateServerGroupRequest(name="short-lived", policy="anti-affinity"),
                                  timeout=10).server_group
    mine.DeleteServerGroup(api_pb2.DeleteServerGroupRequest(id=ours.id), timeout=10)
    before = count_servers(api)
    for group_id in (theirs.id, ours.id):
        with pytest.raises(grpc.RpcError) as err:
            mine.CreateServer(api_pb2.CreateServerRequest(
                name="joiner", flavor_ref="m1.tiny", image_ref=image.id,
                scheduler_hints=api_pb2.SchedulerHints(group=group_id)), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert _fields(err.value) == {"scheduler_hints.group"}
    assert count_servers(api) == before  # nothing stored
    listed = other.ListServerGroups(api_pb2.ListServerGroupsRequest(), timeout=10).server_groups
    assert [g.id for g in listed] == [theirs.id]  # a project sees its own groups
