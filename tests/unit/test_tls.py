"""Transport settings: the public API's TLS, plaintext warnings, missing certificates, the dev switch,
and `drover pki init` — over real gRPC on loopback where a port is involved."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from typer.testing import CliRunner

from drover import pki
from drover.cli.main import app
from drover.config import load_config
from drover.services.common import runtime, tls
from drover.services.common.peer_auth import Peer, peer_from_auth_context
from tests.unit.test_pki import _auth_context, _cert


@pytest.fixture
def pki_dir(tmp_path: Path) -> Path:
    d = tmp_path / "pki"
    pki.init(d, compute_agent="a", compute_hosts=("h",))
    return d


async def _health(chan: grpc.aio.Channel) -> int:
    return int((await health_pb2_grpc.HealthStub(chan).Check(health_pb2.HealthCheckRequest(), timeout=5)).status)


async def test_the_public_api_serves_tls_when_given_a_certificate(pki_dir: Path) -> None:
    cfg = load_config(api={"listen": "127.0.0.1:0", "tls_cert": str(pki.cert_path(pki_dir, "api")),
                           "tls_key": str(pki.key_path(pki_dir, "api"))})
    host = runtime.ServiceHost(cfg.api.listen, [], credentials=tls.public_api_credentials(cfg))
    await host.start()
    try:
        creds = grpc.ssl_channel_credentials(pki.cert_path(pki_dir, pki.CA_NAME).read_bytes())
        async with grpc.aio.secure_channel(host.address, creds,
                                           options=[("grpc.ssl_target_name_override", "api.drover")]) as chan:
            assert await _health(chan) == health_pb2.HealthCheckResponse.SERVING  # no client certificate asked
        async with grpc.aio.insecure_channel(host.address) as chan:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _health(chan)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await host.stop(0)


@pytest.mark.parametrize(("listen", "warned"), [
    ("127.0.0.1:8774", False), ("localhost:8774", False), ("[::1]:8774", False),
    ("0.0.0.0:8774", True), ("[::]:8774", True), ("10.1.2.3:8774", True), ("api.example:8774", True),
])
def test_plaintext_beyond_loopback_is_warned_about(caplog: pytest.LogCaptureFixture, listen: str,
                                                   warned: bool) -> None:
    with caplog.at_level(logging.WARNING, logger=tls.__name__):
        assert tls.public_api_credentials(load_config(api={"listen": listen})) is None
    assert ("in plaintext" in caplog.text) == warned


def test_half_a_certificate_is_an_error(pki_dir: Path) -> None:
    with pytest.raises(SystemExit, match="go together"):
        tls.public_api_credentials(load_config(api={"tls_cert": str(pki.cert_path(pki_dir, "api"))}))


def test_internal_transport_needs_its_files_unless_insecure(tmp_path: Path) -> None:
    cfg = load_config(data_dir=str(tmp_path))
    with pytest.raises(SystemExit, match="drover pki init"):
        tls.transport(cfg, "conductor")
    dev = tls.transport(load_config(data_dir=str(tmp_path), tls={"insecure": True}), "conductor")
    assert not dev.secure and dev.server_credentials() is None
    pki.init_for(cfg)
    t = tls.transport(cfg, "conductor")
    assert t.secure and t.cert == pki.cert_path(cfg.pki_path, "conductor").read_bytes()
    assert ("grpc.ssl_target_name_override", "scheduler.drover") in t.channel_options("scheduler", [])


def test_metrics_default_to_loopback() -> None:
    cfg = load_config()
    for endpoint in (cfg.api, cfg.conductor, cfg.scheduler, cfg.compute):
        assert endpoint.metrics_listen == "127.0.0.1"


def test_pki_init_command(tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["pki", "init", "--data-dir", str(tmp_path)])
    assert first.exit_code == 0, first.output
    assert "ca.crt" in first.output and "compute.crt" in first.output
    again = runner.invoke(app, ["pki", "init", "--data-dir", str(tmp_path)])
    assert again.exit_code == 0 and "already present" in again.output
    hosts = runner.invoke(app, ["pki", "init", "--data-dir", str(tmp_path), "--compute-host", "node7"])
    assert hosts.exit_code == 0 and "compute.crt" in hosts.output and "ca.crt" not in hosts.output
    bad = runner.invoke(app, ["pki", "init", "--data-dir", str(tmp_path), "--compute-host", "a*b"])
    assert bad.exit_code == 2


def test_pki_issue_compute_command(tmp_path: Path) -> None:
    runner = CliRunner()
    no_ca = runner.invoke(app, ["pki", "issue-compute", "node9", "--host", "node9", "--data-dir", str(tmp_path)])
    assert no_ca.exit_code == 2
    assert runner.invoke(app, ["pki", "init", "--data-dir", str(tmp_path)]).exit_code == 0
    made = runner.invoke(app, ["pki", "issue-compute", "node9", "--host", "node9", "--host", "rack2-*",
                               "--data-dir", str(tmp_path)])
    assert made.exit_code == 0, made.output
    peer = peer_from_auth_context(_auth_context(_cert(tmp_path / "pki", "compute-node9")))
    assert peer == Peer("compute", "node9", ("node9", "rack2-*"))
