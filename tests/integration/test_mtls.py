"""mTLS between the internal services, over real processes: who may call what, and with which hosts.

Every internal port requires a client certificate from the drover CA; each RPC and each cast is
checked against the caller's role (its certificate's SPIFFE id), and a compute agent may speak
only for the hosts its certificate names. The attacks of issue #10 are replayed here.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from drover import pki
from drover.localmesh import LocalMesh
from drover.services.common.casts import CastSender
from drover.v1 import (
    api_pb2,
    compute_pb2,
    compute_pb2_grpc,
    conductor_pb2,
    conductor_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
    types_pb2,
)

from .conftest import create, watch

INTERNAL = ("conductor", "scheduler", "compute")
EVIL_HOST = "evil-host"
# gRPC core logs the handshake that test_a_client_checks_the_server_role fails on purpose.
ALLOWED_LOG_RECORDS = (r"No match found for server name: conductor\.drover",)


@pytest.fixture(scope="module")
def evil(mesh: LocalMesh) -> str:
    """A compute agent's certificate signed by the mesh's CA, owning one host of its own."""
    pki.issue(mesh.pki_dir, pki.COMPUTE, agent="evil", hosts=(EVIL_HOST,), name="evil")
    return "evil"


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("other-ca") / "pki"
    pki.init(d, compute_agent="x", compute_hosts=("fake-host-*",))
    return d


def _credentials(pki_dir: Path, name: str | None, ca_dir: Path | None = None) -> grpc.ChannelCredentials:
    ca = pki.cert_path(ca_dir or pki_dir, pki.CA_NAME).read_bytes()
    if name is None:
        return grpc.ssl_channel_credentials(ca)
    return grpc.ssl_channel_credentials(ca, pki.key_path(pki_dir, name).read_bytes(),
                                        pki.cert_path(pki_dir, name).read_bytes())


def _channel(mesh: LocalMesh, service: str, creds: grpc.ChannelCredentials) -> grpc.Channel:
    return grpc.secure_channel(mesh.addresses[service], creds,
                               options=[("grpc.ssl_target_name_override", pki.server_name(service))])


def _health(chan: grpc.Channel) -> Any:
    return health_pb2_grpc.HealthStub(chan).Check(health_pb2.HealthCheckRequest(), timeout=5)


@pytest.fixture(scope="module")
def server(api: Any, image: types_pb2.Image) -> types_pb2.Server:
    """One ACTIVE server, the target of the forged casts."""
    made = create(api, "victim", image.id)
    states = [r.server.status for r in watch(api, made.id)]
    assert states[-1] == types_pb2.SERVER_STATUS_ACTIVE
    return api.GetServer(api_pb2.GetServerRequest(id=made.id), timeout=10).server


def _unchanged(api: Any, before: types_pb2.Server) -> None:
    now = api.GetServer(api_pb2.GetServerRequest(id=before.id), timeout=10).server
    assert now.status == types_pb2.SERVER_STATUS_ACTIVE and now.host == before.host
    assert now.revision == before.revision, "a refused cast must write nothing"


# ---- the transport: no certificate, another CA ----------------------------------------------


@pytest.mark.parametrize("service", INTERNAL)
def test_plaintext_is_refused(mesh: LocalMesh, service: str) -> None:
    with grpc.insecure_channel(mesh.addresses[service]) as chan, pytest.raises(grpc.RpcError) as err:
        _health(chan)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("service", INTERNAL)
def test_no_client_certificate_is_refused(mesh: LocalMesh, service: str) -> None:
    with _channel(mesh, service, _credentials(mesh.pki_dir, None)) as chan, pytest.raises(grpc.RpcError) as err:
        _health(chan)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("service", INTERNAL)
def test_a_certificate_from_another_ca_is_refused(mesh: LocalMesh, other_ca: Path, service: str) -> None:
    # The other CA's conductor certificate, trusting the mesh's CA for the server: the server refuses it.
    creds = _credentials(other_ca, "conductor", ca_dir=mesh.pki_dir)
    with _channel(mesh, service, creds) as chan, pytest.raises(grpc.RpcError) as err:
        _health(chan)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_client_checks_the_server_role(mesh: LocalMesh) -> None:
    """The scheduler's port does not pass for the conductor: a client names the role it expects."""
    with grpc.secure_channel(mesh.addresses["scheduler"], _credentials(mesh.pki_dir, "operator"),
                             options=[("grpc.ssl_target_name_override", pki.server_name("conductor"))]) as chan, \
            pytest.raises(grpc.RpcError) as err:
        _health(chan)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("service", INTERNAL)
def test_any_drover_certificate_may_check_health(mesh: LocalMesh, evil: str, service: str) -> None:
    with _channel(mesh, service, _credentials(mesh.pki_dir, evil)) as chan:
        assert _health(chan).status == health_pb2.HealthCheckResponse.SERVING


# ---- roles: the rule table ------------------------------------------------------------------

SPEC = scheduler_pb2.RequestSpec(instance_ids=["stolen-1", "stolen-2"], vcpus=1, memory_mb=64, root_gb=1)
UNARY: dict[str, tuple[str, Callable[[grpc.Channel], Any], Any]] = {
    "SelectDestinations": ("scheduler", lambda c: scheduler_pb2_grpc.SchedulerServiceStub(c).SelectDestinations,
                           scheduler_pb2.SelectDestinationsRequest(spec=SPEC)),
    "SelectDestinationsBatch": ("scheduler",
                                lambda c: scheduler_pb2_grpc.SchedulerServiceStub(c).SelectDestinationsBatch,
                                scheduler_pb2.SelectDestinationsBatchRequest(
                                    requests=[scheduler_pb2.SelectDestinationsRequest(spec=SPEC)])),
    "ReleaseClaims": ("scheduler", lambda c: scheduler_pb2_grpc.SchedulerServiceStub(c).ReleaseClaims,
                      scheduler_pb2.ReleaseClaimsRequest(instance_ids=["x"])),
    "ReportHosts": ("scheduler", lambda c: scheduler_pb2_grpc.SchedulerServiceStub(c).ReportHosts,
                    scheduler_pb2.ReportHostsRequest(reports=[scheduler_pb2.HostReport(
                        host="rogue-1", agent_address="127.0.0.1:1", vcpus=1000, memory_mb=1 << 30,
                        disk_gb=1 << 20, enabled=True, availability_zone="nova", generation=1)])),
    "GetConsoleOutput": ("compute", lambda c: compute_pb2_grpc.ComputeServiceStub(c).GetConsoleOutput,
                         compute_pb2.ComputeServiceGetConsoleOutputRequest(instance_id="x", host="fake-host-1")),
}
REFUSED = [
    ("SelectDestinations", "evil"), ("SelectDestinations", "compute"), ("SelectDestinations", "operator"),
    ("SelectDestinationsBatch", "compute"), ("SelectDestinationsBatch", "scheduler"),
    ("ReleaseClaims", "compute"), ("ReleaseClaims", "operator"),
    ("ReportHosts", "api"), ("ReportHosts", "conductor"), ("ReportHosts", "operator"),
    ("GetConsoleOutput", "conductor"), ("GetConsoleOutput", "compute"), ("GetConsoleOutput", "operator"),
]


def _used_memory(mesh: LocalMesh) -> int:
    with mesh.internal_channel("scheduler") as chan:
        hosts = scheduler_pb2_grpc.SchedulerServiceStub(chan).ListHosts(
            scheduler_pb2.SchedulerServiceListHostsRequest(), timeout=10).hosts
    return sum(h.memory_mb_used for h in hosts)


@pytest.mark.parametrize(("rpc", "role"), REFUSED)
def test_the_wrong_role_is_permission_denied(mesh: LocalMesh, evil: str, rpc: str, role: str) -> None:
    service, method, request = UNARY[rpc]
    before = _used_memory(mesh)
    with _channel(mesh, service, _credentials(mesh.pki_dir, role)) as chan, pytest.raises(grpc.RpcError) as err:
        method(chan)(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, err.value.details()
    assert role.split("-")[0] in err.value.details() and rpc in err.value.details()
    assert _used_memory(mesh) == before, "a refused call must claim or release nothing"


@pytest.mark.parametrize("role", ["compute", "evil", "conductor", "operator", "scheduler"])
def test_only_the_api_watches_every_instance(mesh: LocalMesh, evil: str, role: str) -> None:
    with _channel(mesh, "conductor", _credentials(mesh.pki_dir, role)) as chan, pytest.raises(grpc.RpcError) as err:
        next(iter(conductor_pb2_grpc.ConductorServiceStub(chan).WatchInstances(
            conductor_pb2.WatchInstancesRequest(), timeout=10)))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_the_api_role_may_watch_and_the_conductor_may_select(mesh: LocalMesh) -> None:
    """The same calls with the right certificate pass (the refusals above are about roles)."""
    with _channel(mesh, "conductor", _credentials(mesh.pki_dir, "api")) as chan:
        call = conductor_pb2_grpc.ConductorServiceStub(chan).WatchInstances(conductor_pb2.WatchInstancesRequest(),
                                                                            timeout=1)
        with pytest.raises(grpc.RpcError) as err:
            next(iter(call))
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # admitted, nothing happened within 1 s
    with mesh.internal_channel("scheduler", "conductor") as chan:
        stub = scheduler_pb2_grpc.SchedulerServiceStub(chan)
        spec = scheduler_pb2.RequestSpec(instance_ids=["allowed-1"], vcpus=1, memory_mb=64, root_gb=1)
        assert len(stub.SelectDestinations(scheduler_pb2.SelectDestinationsRequest(spec=spec), timeout=10)
                   .selections) == 1
        assert stub.ReleaseClaims(scheduler_pb2.ReleaseClaimsRequest(instance_ids=["allowed-1"]),
                                  timeout=10).released == 1


@pytest.mark.parametrize("role", ["api", "operator", "scheduler"])
def test_stream_casts_to_a_compute_are_the_conductors(mesh: LocalMesh, server: types_pb2.Server, api: Any,
                                                      role: str) -> None:
    """The rogue terminate of issue #10, sent to the compute agent directly."""
    cast = compute_pb2.ComputeServiceStreamCastsRequest(
        terminate_instance=compute_pb2.TerminateInstanceCast(instance_id=server.id, host=server.host))
    code = _run_casts(mesh, "compute", role, [cast], compute_pb2.ComputeServiceStreamCastsRequest,
                      lambda c: compute_pb2_grpc.ComputeServiceStub(c).StreamCasts())
    assert code == grpc.StatusCode.PERMISSION_DENIED
    _unchanged(api, server)


# ---- casts: kind by role, host by certificate -------------------------------------------------


def _run_casts(mesh: LocalMesh, service: str, role: str, casts: list[Any], make: Any,
               open_stream: Callable[[grpc.aio.Channel], Any]) -> grpc.StatusCode | None:
    """Send ``casts`` on a cast stream as ``role``; the stream's failure code, or None when every
    cast was acknowledged."""

    async def run() -> grpc.StatusCode | None:
        chan = grpc.aio.secure_channel(mesh.addresses[service], _credentials(mesh.pki_dir, role),
                                       options=[("grpc.ssl_target_name_override", pki.server_name(service))])
        async with chan:
            calls: list[Any] = []

            def open_one() -> Any:
                calls.append(open_stream(chan))
                return calls[-1]

            sender: CastSender[Any] = CastSender("test", open_one, make, liveness_timeout=5.0)
            for c in casts:
                sender.cast(**{c.WhichOneof("cast"): getattr(c, c.WhichOneof("cast"))})
            acked = await sender.flush(5.0)
            await sender.close()
            if acked:
                return None
            return await calls[0].code()  # type: ignore[no-any-return]

    return asyncio.run(run())


def _conductor_casts(mesh: LocalMesh, role: str, *casts: Any) -> grpc.StatusCode | None:
    return _run_casts(mesh, "conductor", role, list(casts), conductor_pb2.ConductorServiceStreamCastsRequest,
                      lambda c: conductor_pb2_grpc.ConductorServiceStub(c).StreamCasts())


def _error_update(server: types_pb2.Server, host: str) -> conductor_pb2.ConductorServiceStreamCastsRequest:
    return conductor_pb2.ConductorServiceStreamCastsRequest(instance_update=conductor_pb2.InstanceUpdateCast(
        instance_id=server.id, host=host, steps=[conductor_pb2.InstanceStep(
            vm_state=types_pb2.VM_STATE_ERROR, fault=types_pb2.Fault(code=500, message="forged"))]))


def test_the_api_may_not_cast_instance_updates(mesh: LocalMesh, api: Any, server: types_pb2.Server) -> None:
    """The forged instance_update of issue #10 (another project's server into ERROR)."""
    assert _conductor_casts(mesh, "api", _error_update(server, server.host)) == grpc.StatusCode.PERMISSION_DENIED
    _unchanged(api, server)


@pytest.mark.parametrize("role", ["compute", "evil"])
def test_a_compute_may_not_cast_deletes_or_builds(mesh: LocalMesh, api: Any, evil: str, server: types_pb2.Server,
                                                  role: str) -> None:
    delete = conductor_pb2.ConductorServiceStreamCastsRequest(
        delete_instance=conductor_pb2.DeleteInstanceCast(instance_id=server.id))
    assert _conductor_casts(mesh, role, delete) == grpc.StatusCode.PERMISSION_DENIED
    build = conductor_pb2.ConductorServiceStreamCastsRequest(build_instances=conductor_pb2.BuildInstancesCast(
        spec=scheduler_pb2.RequestSpec(instance_ids=[server.id])))
    assert _conductor_casts(mesh, role, build) == grpc.StatusCode.PERMISSION_DENIED
    _unchanged(api, server)


@pytest.mark.parametrize("role", ["conductor", "scheduler", "operator"])
def test_other_roles_may_not_cast_to_the_conductor(mesh: LocalMesh, api: Any, server: types_pb2.Server,
                                                   role: str) -> None:
    assert _conductor_casts(mesh, role, _error_update(server, server.host)) == grpc.StatusCode.PERMISSION_DENIED
    _unchanged(api, server)


def test_a_compute_updates_only_instances_on_its_own_hosts(mesh: LocalMesh, api: Any, evil: str,
                                                           server: types_pb2.Server) -> None:
    """Naming the victim's host (not in its certificate) or its own host (where the victim is not):
    both are acknowledged, so the stream goes on, and neither writes anything."""
    assert server.host != EVIL_HOST
    code = _conductor_casts(mesh, evil, _error_update(server, server.host), _error_update(server, EVIL_HOST),
                            _error_update(server, ""))
    assert code is None
    _unchanged(api, server)
    assert f"refused instance_update from compute/evil: [{server.host!r}] not among its hosts" in mesh.log_tail(
        "conductor", 200)


def test_the_compute_that_owns_the_host_still_updates(mesh: LocalMesh, api: Any, image: types_pb2.Image) -> None:
    """The host check refuses strangers only: the mesh's own agent drives a server through its life."""
    made = create(api, "owned", image.id)
    assert watch(api, made.id)[-1].server.status == types_pb2.SERVER_STATUS_ACTIVE
    api.DeleteServer(api_pb2.DeleteServerRequest(id=made.id), timeout=10)
    assert watch(api, made.id)[-1].server.status == types_pb2.SERVER_STATUS_DELETED


# ---- host reports: the rogue host of issue #10 ---------------------------------------------------


def _hosts(mesh: LocalMesh) -> set[str]:
    with mesh.internal_channel("scheduler") as chan:
        return {h.host for h in scheduler_pb2_grpc.SchedulerServiceStub(chan).ListHosts(
            scheduler_pb2.SchedulerServiceListHostsRequest(), timeout=10).hosts}


@pytest.mark.parametrize("role", ["compute", "evil"])
def test_a_compute_may_not_report_a_host_it_does_not_own(mesh: LocalMesh, evil: str, role: str) -> None:
    """ReportHosts with a rogue host whose agent address points at the attacker: refused, and a
    report mixing an owned host with a foreign one stores neither."""
    _, method, rogue = UNARY["ReportHosts"]
    own = "fake-host-1" if role == "compute" else EVIL_HOST
    mixed = scheduler_pb2.ReportHostsRequest(reports=[
        scheduler_pb2.HostReport(host=own, agent_address="127.0.0.1:1", vcpus=1, memory_mb=64, generation=1),
        *rogue.reports])
    before = _hosts(mesh)
    with _channel(mesh, "scheduler", _credentials(mesh.pki_dir, role)) as chan:
        for request in (rogue, mixed):
            with pytest.raises(grpc.RpcError) as err:
                method(chan)(request, timeout=10)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "rogue-1" in err.value.details()
    after = _hosts(mesh)
    assert after == before and "rogue-1" not in after and EVIL_HOST not in after


def test_builds_never_reach_a_rogue_agent(mesh: LocalMesh, api: Any, image: types_pb2.Image) -> None:
    """After the refused reports, builds land on the real hosts."""
    made = [create(api, f"after-rogue-{i}", image.id) for i in range(3)]
    for s in made:
        final = watch(api, s.id)[-1].server
        assert final.status == types_pb2.SERVER_STATUS_ACTIVE and final.host.startswith("fake-host-")


# ---- metrics stay on loopback ---------------------------------------------------------------------


def _outside_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: only picks the outward interface
        except OSError:
            return None
        addr = str(s.getsockname()[0])
    return None if addr.startswith("127.") else addr


def test_metrics_bind_loopback_by_default(mesh: LocalMesh) -> None:
    outside = _outside_address()
    for url in mesh.metrics.values():
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.status == 200
        if outside is None:
            continue
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        with socket.socket() as s:
            s.settimeout(2)
            assert s.connect_ex((outside, port)) != 0, f"{url} is reachable on {outside}"
    if outside is None:
        pytest.skip("no non-loopback address to probe from")



# ---- the development switch -------------------------------------------------------------------


def test_insecure_mode_is_plaintext_and_makes_no_certificates(tmp_path: Path) -> None:
    with LocalMesh.on_free_ports(tmp_path / "dev", TLS__INSECURE="true") as dev:
        with grpc.insecure_channel(dev.addresses["scheduler"]) as chan:
            assert _health(chan).status == health_pb2.HealthCheckResponse.SERVING
        assert not dev.pki_dir.exists()
        assert "plaintext without peer checks" in dev.log_tail("conductor")
