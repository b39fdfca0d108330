"""Faults found under chaos, each reproduced over real processes (issue: faults as a test suite)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from drover.localmesh import LocalMesh
from drover.v1 import api_pb2, api_pb2_grpc, types_pb2
from tests.integration.conftest import _wait_hosts
from tests.integration.test_observability import metric, scrape

HOSTS = 20


def _mesh(tmp_path: Path, **settings: str) -> LocalMesh:
    m = LocalMesh.on_free_ports(tmp_path, COMPUTE__FAKE_HOSTS=str(HOSTS), COMPUTE__REPORT_INTERVAL="60",
                                COMPUTE__FAKE_VCPUS="64", COMPUTE__FAKE_MEMORY_MB="65536", **settings)
    m.start()
    _wait_hosts(m, HOSTS)
    return m


@pytest.fixture()
def fault_mesh(tmp_path: Path) -> Iterator[LocalMesh]:
    m = _mesh(tmp_path)
    yield m
    m.stop()


def _image(api: api_pb2_grpc.ApiServiceStub, tmp_path: Path) -> str:
    path = tmp_path / "images" / "disk.raw"  # the mesh's image directory (its data dir is tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * 1024)
    return str(api.CreateImage(api_pb2.CreateImageRequest(name="img", path=str(path)), timeout=30).image.id)


def _all_servers(api: api_pb2_grpc.ApiServiceStub) -> list[types_pb2.Server]:
    out, token = [], ""
    while True:
        resp = api.ListServers(api_pb2.ListServersRequest(page_size=1000, page_token=token, include_deleted=True),
                               timeout=30)
        out.extend(resp.servers)
        token = resp.next_page_token
        if not token:
            return out


def _settled(s: types_pb2.Server) -> bool:
    return s.task_state == types_pb2.TASK_STATE_UNSPECIFIED and s.vm_state in (
        types_pb2.VM_STATE_ACTIVE, types_pb2.VM_STATE_ERROR, types_pb2.VM_STATE_DELETED, types_pb2.VM_STATE_STOPPED)


def _wait_quiet(api: api_pb2_grpc.ApiServiceStub, timeout: float) -> list[types_pb2.Server]:
    """Every server settled (or the deadline passed): the final list."""
    deadline = time.monotonic() + timeout
    while True:
        servers = _all_servers(api)
        if all(_settled(s) for s in servers) or time.monotonic() > deadline:
            return servers
        time.sleep(0.5)


def _stuck(servers: dict[str, types_pb2.Server], ids: list[str]) -> list[str]:
    return [f"{sid} {types_pb2.VmState.Name(servers[sid].vm_state)}/{types_pb2.TaskState.Name(servers[sid].task_state)}"
            for sid in ids if not _settled(servers[sid])][:5]


def _churn(api: api_pb2_grpc.ApiServiceStub, image_id: str, n: int, rate: float, delete_every: int = 2,
           stop_early: threading.Event | None = None) -> tuple[list[str], list[str], list[str]]:
    """Create ``n`` servers at ``rate`` per second from several clients, deleting every ``delete_every``-th
    (0: none) as soon as it exists; returns (created ids, deleted ids, errors)."""
    created: list[str] = []
    deleted: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        try:
            sid = api.CreateServer(api_pb2.CreateServerRequest(name=f"s{i}", flavor_ref="m1.tiny",
                                                               image_ref=image_id), timeout=10).server.id
        except grpc.RpcError as exc:
            with lock:
                errors.append(f"create {i}: {exc.code().name} {exc.details()}")
            return
        with lock:
            created.append(sid)
        if delete_every and i % delete_every == 0:
            try:
                api.DeleteServer(api_pb2.DeleteServerRequest(id=sid), timeout=10)
            except grpc.RpcError as exc:
                with lock:
                    errors.append(f"delete {sid}: {exc.code().name} {exc.details()}")
                return
            with lock:
                deleted.append(sid)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        start = time.monotonic()
        futs = []
        for i in range(n):
            if stop_early is not None and stop_early.is_set():
                break
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
            futs.append(pool.submit(one, i))
        for f in futs:
            f.result()
    return created, deleted, errors


def test_deletes_mixed_with_creates_at_load_finish_and_nothing_is_stuck(fault_mesh: LocalMesh,
                                                                         tmp_path: Path) -> None:
    # Before the fix the API took the store's write lock on its event loop while its own group
    # commit held it: the API froze, deletes failed "database is locked", the conductor's commit
    # task died and everything after stayed SCHEDULING / DELETING.
    with fault_mesh.api_channel() as chan:
        api = api_pb2_grpc.ApiServiceStub(chan)
        image_id = _image(api, tmp_path)
        created, deleted, errors = _churn(api, image_id, n=300, rate=50)
        assert errors == [], errors[:5]
        servers = {s.id: s for s in _wait_quiet(api, timeout=60)}
        assert _stuck(servers, created) == []
        assert {servers[sid].vm_state for sid in deleted} == {types_pb2.VM_STATE_DELETED}
        kept = set(created) - set(deleted)
        assert {servers[sid].vm_state for sid in kept} == {types_pb2.VM_STATE_ACTIVE}
        hosts = api.ListHosts(api_pb2.ListHostsRequest(), timeout=10).hosts
        assert sum(h.memory_mb_used for h in hosts) == 512 * len(kept), "claims must match the servers left"


def _placed_memory(servers: dict[str, types_pb2.Server]) -> dict[str, int]:
    """Memory the servers placed on each host hold (ERROR and deleted servers hold none)."""
    out: dict[str, int] = {}
    for s in servers.values():
        if s.host and s.vm_state in (types_pb2.VM_STATE_ACTIVE, types_pb2.VM_STATE_BUILDING,
                                     types_pb2.VM_STATE_STOPPED):
            out[s.host] = out.get(s.host, 0) + 512
    return out


def _host_memory(api: api_pb2_grpc.ApiServiceStub) -> dict[str, int]:
    return {h.host: h.memory_mb_used for h in api.ListHosts(api_pb2.ListHostsRequest(), timeout=10).hosts
            if h.memory_mb_used}


def test_scheduler_restart_under_creates_turns_no_server_to_error(fault_mesh: LocalMesh, tmp_path: Path) -> None:
    # Before the fix a restarted scheduler answered "no valid host: 0 hosts" until each compute's
    # next report (60 s here), and the conductor turned that into ERROR.
    with fault_mesh.api_channel() as chan:
        api = api_pb2_grpc.ApiServiceStub(chan)
        image_id = _image(api, tmp_path)

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            churn = pool.submit(_churn, api, image_id, n=150, rate=30, delete_every=0)
            time.sleep(1.5)
            # From this thread: a service dies with the thread that started it (PR_SET_PDEATHSIG).
            fault_mesh.stop_service("scheduler", sig=signal.SIGKILL)
            fault_mesh.start_service("scheduler")
            created, _, errors = churn.result()
        assert errors == [], errors[:5]
        servers = {s.id: s for s in _wait_quiet(api, timeout=90)}
        assert _stuck(servers, created) == []
        failed = [f"{s.id}: {s.fault.message}" for s in servers.values() if s.vm_state == types_pb2.VM_STATE_ERROR]
        assert failed == [], failed[:5]
        assert {servers[sid].vm_state for sid in created} == {types_pb2.VM_STATE_ACTIVE}


def test_deletes_right_after_a_scheduler_restart_leave_claims_equal_to_the_servers(
        fault_mesh: LocalMesh, tmp_path: Path) -> None:
    # Before the fix the scheduler restored claims into a pending list that ReleaseClaims never
    # looked at: the deleted servers' claims came back with the next report and stayed.
    with fault_mesh.api_channel() as chan:
        api = api_pb2_grpc.ApiServiceStub(chan)
        image_id = _image(api, tmp_path)
        created, _, errors = _churn(api, image_id, n=60, rate=60, delete_every=0)
        assert errors == []
        _wait_quiet(api, timeout=60)
        fault_mesh.stop_service("scheduler", sig=signal.SIGKILL)
        fault_mesh.start_service("scheduler")
        for sid in created[::2]:
            api.DeleteServer(api_pb2.DeleteServerRequest(id=sid), timeout=10)
        servers = {s.id: s for s in _wait_quiet(api, timeout=60)}
        assert _stuck(servers, created) == []
        want = _placed_memory(servers)
        assert sum(want.values()) == 512 * (len(created) - len(created[::2]))
        deadline = time.monotonic() + 30
        while (got := _host_memory(api)) != want and time.monotonic() < deadline:
            time.sleep(0.5)
        assert got == want, "host usage must equal the servers placed there"


def test_servers_whose_guests_died_with_a_fake_compute_become_error_with_a_fault(
        tmp_path: Path) -> None:
    # The fake driver keeps guests in memory: a compute restart loses them. Before the fix the
    # servers stayed ACTIVE while their hosts reported 0 instances and nothing compared the two.
    mesh = _mesh(tmp_path, COMPUTE__SYNC_POWER_STATE_INTERVAL="2")
    try:
        with mesh.api_channel() as chan:
            api = api_pb2_grpc.ApiServiceStub(chan)
            image_id = _image(api, tmp_path)
            created, _, errors = _churn(api, image_id, n=20, rate=40, delete_every=0)
            assert errors == []
            before = {s.id: s for s in _wait_quiet(api, timeout=60)}
            assert {before[sid].vm_state for sid in created} == {types_pb2.VM_STATE_ACTIVE}
            mesh.stop_service("compute", sig=signal.SIGKILL)
            mesh.start_service("compute")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                servers = {s.id: s for s in _all_servers(api)}
                if all(servers[sid].vm_state == types_pb2.VM_STATE_ERROR for sid in created):
                    break
                time.sleep(0.5)
            assert {types_pb2.VmState.Name(servers[sid].vm_state) for sid in created} == {"VM_STATE_ERROR"}
            assert all("is gone from host" in servers[sid].fault.message for sid in created)
            assert metric(scrape(mesh.metrics["conductor"]), "drover_reconcile_fixes_total",
                          kind="guest_missing") == len(created)
            history = api.ListServerActions(api_pb2.ListServerActionsRequest(server_id=created[0]), timeout=10)
            fix = history.actions[-1]
            assert fix.action == "reconcile" and [e.event for e in fix.events] == ["conductor_reconcile_guests"]
            deadline = time.monotonic() + 15
            while (used := _host_memory(api)) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert used == {}, "a server without a guest holds no resources"
            # The agent serves new builds as before.
            more, _, errors = _churn(api, image_id, n=5, rate=20, delete_every=0)
            final = {s.id: s for s in _wait_quiet(api, timeout=60)}
            assert errors == [] and {final[sid].vm_state for sid in more} == {types_pb2.VM_STATE_ACTIVE}
    finally:
        mesh.stop()


def _health_latencies(address: str, seconds: float) -> list[float]:
    """How long each health check took, asked back to back for ``seconds``."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    out = []
    with grpc.insecure_channel(address) as chan:
        stub = health_pb2_grpc.HealthStub(chan)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.monotonic()
            with contextlib.suppress(grpc.RpcError):
                stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            out.append(time.monotonic() - t0)
            time.sleep(0.05)
    return out


def test_a_conductor_restarting_with_a_large_backlog_serves_at_once(fault_mesh: LocalMesh, tmp_path: Path) -> None:
    # Before the fix the conductor read and re-drove its whole backlog on its event loop: health
    # checks (and every cast) waited until it was through.
    import datetime as dt
    import uuid

    from sqlalchemy import create_engine, insert

    from drover.store.tables import INSTANCES

    with fault_mesh.api_channel() as chan:
        image_id = _image(api_pb2_grpc.ApiServiceStub(chan), tmp_path)
    fault_mesh.stop_service("conductor", sig=signal.SIGKILL)
    old = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=5)
    rows = [dict(id=str(uuid.uuid4()), name=f"b{i}", project_id="p", user_id="u", reservation_id="r",
                 flavor_id="1", image_id=image_id, vcpus=1, memory_mb=512, root_gb=1, ephemeral_gb=0, swap_mb=0,
                 vm_state="building", task_state="scheduling", power_state=0, availability_zone="",
                 access_ip_v4="", access_ip_v6="", key_name="", requested_networks=[], addresses=[], metadata={},
                 scheduler_hints={}, fault_code=0, fault_message="", fault_details="", scheduler_explanation={},
                 build_attempts=0, revision=1, created_at=old, updated_at=old, deleted=False) for i in range(6000)]
    engine = create_engine(f"sqlite:///{tmp_path / 'drover.db'}")
    with engine.begin() as c:
        c.execute(insert(INSTANCES), rows)
    engine.dispose()
    started = time.monotonic()
    fault_mesh.start_service("conductor")
    assert time.monotonic() - started < 10
    latencies = _health_latencies(fault_mesh.addresses["conductor"], 6.0)
    assert max(latencies) < 1.0, f"health waited {max(latencies):.1f} s while the backlog was re-driven"


def test_create_and_delete_retried_with_a_client_token_return_the_original(fault_mesh: LocalMesh,
                                                                           tmp_path: Path) -> None:
    with fault_mesh.api_channel() as chan:
        api = api_pb2_grpc.ApiServiceStub(chan)
        image_id = _image(api, tmp_path)
        req = api_pb2.CreateServerRequest(name="once", flavor_ref="m1.tiny", image_ref=image_id, max_count=3,
                                          client_token="tok-1")
        first = api.CreateServer(req, timeout=10)
        # The answer was "lost" and the API died: the retry goes to a new API process.
        fault_mesh.stop_service("api", sig=signal.SIGKILL)
        fault_mesh.start_service("api")
        again = api.CreateServer(req, timeout=10)
        assert [s.id for s in again.servers] == [s.id for s in first.servers]
        assert again.reservation_id == first.reservation_id
        # Twins racing with one token make one reservation.
        twin = api_pb2.CreateServerRequest(name="twin", flavor_ref="m1.tiny", image_ref=image_id,
                                           client_token="tok-2")
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: api.CreateServer(twin, timeout=10).server.id, range(8)))
        assert len(set(answers)) == 1
        # The metadata entry works as the field does.
        meta = api_pb2.CreateServerRequest(name="meta", flavor_ref="m1.tiny", image_ref=image_id)
        a = api.CreateServer(meta, metadata=(("idempotency-key", "tok-3"),), timeout=10).server.id
        b = api.CreateServer(meta, metadata=(("idempotency-key", "tok-3"),), timeout=10).server.id
        assert a == b
        names = sorted(s.name for s in _all_servers(api))
        assert names == ["meta", "once-1", "once-2", "once-3", "twin"]
        # The same token with another request is refused, naming the field.
        other = api_pb2.CreateServerRequest(name="other", flavor_ref="m1.tiny", image_ref=image_id,
                                            client_token="tok-1")
        with pytest.raises(grpc.RpcError) as err:
            api.CreateServer(other, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "client_token" in (err.value.details() or "") or "tok-1" in (err.value.details() or "")
        # A delete retried after it finished returns the server as deleted, not NOT_FOUND.
        delete = api_pb2.DeleteServerRequest(id=a, client_token="del-1")
        api.DeleteServer(delete, timeout=10)
        _wait_quiet(api, timeout=30)
        assert api.DeleteServer(delete, timeout=10).server.vm_state == types_pb2.VM_STATE_DELETED
        with pytest.raises(grpc.RpcError) as err:
            api.DeleteServer(api_pb2.DeleteServerRequest(id=a), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        hits = scrape(fault_mesh.metrics["api"])
        assert metric(hits, "drover_api_idempotent_hits_total", rpc="CreateServer") >= 3
        assert metric(hits, "drover_api_idempotent_hits_total", rpc="DeleteServer") == 1
