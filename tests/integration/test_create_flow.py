"""Nova's create path end to end over real gRPC: API → conductor → scheduler → compute (fake driver)."""

from __future__ import annotations

import time

import grpc
import pytest

from drover.services.common import states
from drover.v1 import api_pb2, types_pb2
from tests.integration.conftest import create, register_image, watch


def test_create_reaches_active_with_notifications_and_events(api, image) -> None:
    server = create(api, "web-1", image.id)
    assert server.status == types_pb2.SERVER_STATUS_BUILD
    assert server.vm_state == types_pb2.VM_STATE_BUILDING
    assert server.task_state == types_pb2.TASK_STATE_SCHEDULING

    events = watch(api, server.id)
    final = events[-1].server
    assert final.status == types_pb2.SERVER_STATUS_ACTIVE, final
    assert final.power_state == types_pb2.POWER_STATE_RUNNING
    assert final.task_state == types_pb2.TASK_STATE_UNSPECIFIED
    assert final.host.startswith("fake-host-")
    assert final.HasField("launched_at")
    assert [a.network_name for a in final.addresses] == ["private"]

    notes = [e.notification.event_type for e in events if e.HasField("notification")]
    assert notes == [states.CREATE_START, states.CREATE_END]
    seen_tasks = [e.server.task_state for e in events]
    for task in (types_pb2.TASK_STATE_NETWORKING, types_pb2.TASK_STATE_BLOCK_DEVICE_MAPPING,
                 types_pb2.TASK_STATE_SPAWNING):
        assert task in seen_tasks, f"{types_pb2.TaskState.Name(task)} never seen: {seen_tasks}"
    revisions = [e.server.revision for e in events]
    assert revisions == sorted(revisions)

    actions = api.ListServerActions(api_pb2.ListServerActionsRequest(server_id=server.id), timeout=10).actions
    assert [a.action for a in actions] == ["create"]
    create_action = actions[0]
    assert create_action.HasField("finish_time")
    by_name = {e.event: e for e in create_action.events}
    assert sorted(e.event for e in create_action.events) == sorted([states.EV_SCHEDULE, states.EV_BUILD,
                                                                    states.EV_SPAWN])  # each once
    for ev in by_name.values():
        assert ev.result == "Success", ev
        assert ev.HasField("start_time") and ev.HasField("finish_time")
        assert ev.start_time.ToNanoseconds() <= ev.finish_time.ToNanoseconds(), ev
    build, spawn = by_name[states.EV_BUILD], by_name[states.EV_SPAWN]
    assert build.start_time.ToNanoseconds() <= spawn.start_time.ToNanoseconds()  # spawn runs inside build
    assert spawn.finish_time.ToNanoseconds() <= build.finish_time.ToNanoseconds()
    assert build.host == final.host


def test_get_list_filter_and_paginate(api, image) -> None:
    ids = [create(api, f"page-{i}", image.id).id for i in range(5)]
    for sid in ids:
        watch(api, sid)
    got = api.GetServer(api_pb2.GetServerRequest(id=ids[0]), timeout=10).server
    assert got.name == "page-0"

    seen, token = [], ""
    while True:
        resp = api.ListServers(api_pb2.ListServersRequest(name="^page-", page_size=2, page_token=token), timeout=10)
        assert len(resp.servers) <= 2
        seen += [s.id for s in resp.servers]
        token = resp.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(ids)
    assert seen == list(reversed(ids)), "newest first"

    active = api.ListServers(api_pb2.ListServersRequest(status=types_pb2.SERVER_STATUS_ACTIVE, name="^page-3$"),
                             timeout=10).servers
    assert [s.id for s in active] == [ids[3]]
    building = api.ListServers(api_pb2.ListServersRequest(status=types_pb2.SERVER_STATUS_BUILD, name="^page-"),
                               timeout=10).servers
    assert building == []


def test_name_is_stripped(api, image) -> None:
    server = create(api, "   padded   ", image.id)
    assert server.name == "padded"
    watch(api, server.id)


def test_multi_create_names_and_reservation(api, image) -> None:
    resp = api.CreateServer(api_pb2.CreateServerRequest(name="batch", flavor_ref="m1.tiny", image_ref=image.id,
                                                        min_count=3, max_count=3), timeout=30)
    assert [s.name for s in resp.servers] == ["batch-1", "batch-2", "batch-3"]
    assert len({s.reservation_id for s in resp.servers}) == 1
    for s in resp.servers:
        assert watch(api, s.id)[-1].server.status == types_pb2.SERVER_STATUS_ACTIVE


def test_no_valid_host_explains_itself(api, image) -> None:
    big = api.CreateFlavor(api_pb2.CreateFlavorRequest(flavor=types_pb2.Flavor(
        name="huge", vcpus=1, memory_mb=1_000_000, root_gb=1)), timeout=10).flavor
    server = create(api, "too-big", image.id, flavor=big.id)
    events = watch(api, server.id)
    final = events[-1].server
    assert final.status == types_pb2.SERVER_STATUS_ERROR
    assert final.task_state == types_pb2.TASK_STATE_UNSPECIFIED
    assert "No valid host" in final.fault.message
    assert "RamFilter rejected 4" in final.fault.message
    expl = final.scheduler_explanation
    assert expl.hosts_total == 4 and expl.hosts_passed == 0
    assert any(r.filter == "RamFilter" and r.rejected == 4 for r in expl.rejections)
    assert [e.notification.event_type for e in events if e.HasField("notification")] == [states.CREATE_ERROR]
    action = api.ListServerActions(api_pb2.ListServerActionsRequest(server_id=server.id), timeout=10).actions[0]
    assert action.HasField("finish_time")
    (ev,) = action.events
    assert ev.event == states.EV_SCHEDULE and ev.result == "Error"


def test_spawn_failure_reschedules_then_errors(api, image_file) -> None:
    bad = register_image(api, image_file, "fails-to-boot", drover_fake_fail_step="wait_for_boot")
    server = create(api, "doomed", bad.id)
    events = watch(api, server.id, timeout=60)
    final = events[-1].server
    assert final.status == types_pb2.SERVER_STATUS_ERROR
    assert "fake failure injected at wait_for_boot" in final.fault.message
    notes = [e.notification.event_type for e in events if e.HasField("notification")]
    assert notes.count(states.CREATE_ERROR) >= 1
    action = api.ListServerActions(api_pb2.ListServerActionsRequest(server_id=server.id), timeout=10).actions[0]
    builds = [e for e in action.events if e.event == states.EV_BUILD]
    assert len(builds) == 3, "max_attempts=3 builds on three different hosts"
    assert len({e.host for e in builds}) == 3
    assert all(e.result == "Error" for e in builds)


def test_delete_active_server(api, image) -> None:
    server = create(api, "short-lived", image.id)
    host = watch(api, server.id)[-1].server.host
    api.DeleteServer(api_pb2.DeleteServerRequest(id=server.id), timeout=10)
    events = watch(api, server.id, follow=True)
    assert events[-1].server.vm_state == types_pb2.VM_STATE_DELETED
    notes = [e.notification.event_type for e in events if e.HasField("notification")]
    assert notes[-2:] == [states.DELETE_START, states.DELETE_END]
    with pytest.raises(grpc.RpcError) as err:
        api.GetServer(api_pb2.GetServerRequest(id=server.id), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    actions = api.ListServerActions(api_pb2.ListServerActionsRequest(server_id=server.id), timeout=10).actions
    assert [a.action for a in actions] == ["create", "delete"]
    (term,) = actions[1].events
    assert term.event == states.EV_TERMINATE and term.result == "Success" and term.host == host


def test_delete_while_building(api, image_file) -> None:
    slow = register_image(api, image_file, "slow-boot", drover_fake_step_seconds="1.0")
    server = create(api, "impatient", slow.id)
    stream = api.WatchServer(api_pb2.WatchServerRequest(id=server.id, follow=True), timeout=60)
    for ev in stream:
        if ev.server.task_state == types_pb2.TASK_STATE_SPAWNING:
            break
    else:
        pytest.fail("never reached SPAWNING")
    host = ev.server.host
    api.DeleteServer(api_pb2.DeleteServerRequest(id=server.id), timeout=10)
    rest = list(stream)
    assert rest[-1].server.vm_state == types_pb2.VM_STATE_DELETED
    assert all(e.server.vm_state != types_pb2.VM_STATE_ACTIVE for e in rest)
    # Its claim is returned (just after DELETED is published): the host holds only other live servers' claims.
    deadline = time.monotonic() + 10
    while True:
        used = {h.host: h.memory_mb_used for h in api.ListHosts(api_pb2.ListHostsRequest(), timeout=10).hosts}[host]
        live = api.ListServers(api_pb2.ListServersRequest(host=host), timeout=10).servers
        expected = sum(512 for s in live if s.vm_state != types_pb2.VM_STATE_ERROR)
        if used == expected or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert used == expected


def test_delete_during_scheduling_of_a_no_host_server(api, image) -> None:
    server = create(api, "errored", image.id, flavor="huge")
    watch(api, server.id)
    api.DeleteServer(api_pb2.DeleteServerRequest(id=server.id), timeout=10)
    final = watch(api, server.id, follow=True)[-1].server
    assert final.vm_state == types_pb2.VM_STATE_DELETED


def test_a_watch_opened_after_the_build_replays_it_from_the_revision_create_returned(api, image) -> None:
    server = create(api, "late-watcher", image.id)
    deadline = time.monotonic() + 30
    while api.GetServer(api_pb2.GetServerRequest(id=server.id), timeout=10).server.status != \
            types_pb2.SERVER_STATUS_ACTIVE:
        assert time.monotonic() < deadline, "never ACTIVE"
        time.sleep(0.05)
    # Without since_revision: the server as it is now, and nothing else.
    now = list(api.WatchServer(api_pb2.WatchServerRequest(id=server.id), timeout=10))
    assert [e.server.status for e in now] == [types_pb2.SERVER_STATUS_ACTIVE]
    # From the revision CreateServer returned: every step and both notifications, in order.
    replay = list(api.WatchServer(api_pb2.WatchServerRequest(id=server.id, since_revision=server.revision),
                                  timeout=10))
    revisions = [e.server.revision for e in replay]
    assert revisions == list(range(server.revision + 1, revisions[-1] + 1))
    assert [e.notification.event_type for e in replay if e.HasField("notification")] == [
        states.CREATE_START, states.CREATE_END]
    assert types_pb2.TASK_STATE_BLOCK_DEVICE_MAPPING in [e.server.task_state for e in replay]
    assert replay[-1].server == now[0].server


def test_a_deleted_image_is_refused_at_once_even_after_a_burst_of_creates_used_it(api, image_file) -> None:
    doomed = register_image(api, image_file, "short-lived-image")
    first = create(api, "uses-doomed", "short-lived-image")  # by name: resolved (and kept a moment) by the API
    assert watch(api, first.id)[-1].server.status == types_pb2.SERVER_STATUS_ACTIVE
    with pytest.raises(grpc.RpcError) as err:  # not while a server uses it
        api.DeleteImage(api_pb2.DeleteImageRequest(id=doomed.id), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and first.id in err.value.details()
    api.DeleteServer(api_pb2.DeleteServerRequest(id=first.id), timeout=10)
    assert watch(api, first.id)[-1].server.status == types_pb2.SERVER_STATUS_DELETED
    api.DeleteImage(api_pb2.DeleteImageRequest(id=doomed.id), timeout=10)
    for ref in ("short-lived-image", doomed.id):
        with pytest.raises(grpc.RpcError) as err:
            create(api, "too-late", ref)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
