"""Health, reflection and Prometheus metrics on every service."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from drover.agent.driver import SPAWN_STEPS
from drover.v1 import api_pb2
from tests.integration.conftest import create, watch

SERVICE_NAMES = {
    "api": "drover.v1.ApiService",
    "conductor": "drover.v1.ConductorService",
    "scheduler": "drover.v1.SchedulerService",
    "compute": "drover.v1.ComputeService",
}


def scrape(url: str) -> dict[str, float]:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def metric(samples: dict[str, float], name: str, **labels: str) -> float:
    total = 0.0
    for key, value in samples.items():
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?", key)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += value
    return total


def exported(samples: dict[str, float], name: str, **labels: str) -> float:
    """`metric`, for a series that must be there (metric() reads an absent one as 0)."""
    assert any(re.fullmatch(rf"{name}(\{{.*\}})?", key) and all(f'{k}="{v}"' in key for k, v in labels.items())
               for key in samples), f"{name}{labels or ''} is not exported"
    return metric(samples, name, **labels)


@pytest.mark.parametrize("service", list(SERVICE_NAMES))
def test_health_serving(mesh, service) -> None:
    internal = service != "api"
    with mesh.internal_channel(service) if internal else grpc.insecure_channel(mesh.addresses[service]) as chan:
        stub = health_pb2_grpc.HealthStub(chan)
        for name in ("", SERVICE_NAMES[service]):
            resp = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_metrics_move(mesh, api, image) -> None:
    before = {name: scrape(url) for name, url in mesh.metrics.items()}
    server = create(api, "metered", image.id)
    watch(api, server.id)
    after = {name: scrape(url) for name, url in mesh.metrics.items()}

    def delta(service: str, name: str, **labels: str) -> float:
        return metric(after[service], name, **labels) - metric(before[service], name, **labels)

    assert delta("api", "grpc_server_handled_total", grpc_method="CreateServer", grpc_code="OK",
                 grpc_service="drover.v1.ApiService", grpc_type="unary") == 1
    assert delta("api", "grpc_server_started_total", grpc_method="CreateServer") == 1
    assert delta("api", "grpc_server_handling_seconds_count", grpc_method="CreateServer") == 1
    assert delta("scheduler", "grpc_server_handled_total", grpc_method="SelectDestinationsBatch", grpc_code="OK") == 1
    assert delta("scheduler", "drover_scheduler_select_seconds_count") == 1
    assert delta("scheduler", "drover_scheduler_hosts_per_select_sum") == 4
    assert metric(after["scheduler"], "drover_scheduler_hosts", state="up") == 4
    assert delta("compute", "drover_compute_builds_total", result="success") == 1
    for step in SPAWN_STEPS:
        assert delta("compute", "drover_compute_spawn_step_seconds_count", step=step) == 1
    # the build cast, and the compute's progress report (the whole fake build is one report)
    assert delta("conductor", "drover_casts_applied", receiver="conductor") >= 2
    assert delta("compute", "drover_casts_sent_total", stream="compute->conductor") >= 1
    assert delta("api", "drover_casts_sent_total", stream="api->conductor") == 1  # the build
    # ...and the conductor acknowledged it: the api's queue of unacknowledged casts drains to 0
    deadline = time.monotonic() + 10
    while exported(scrape(mesh.metrics["api"]), "drover_cast_queue_depth", stream="api->conductor") != 0:
        assert time.monotonic() < deadline, "the api's build cast was never acknowledged"
        time.sleep(0.1)
    assert "drover_instances" in {re.sub(r"\{.*", "", k) for k in after["conductor"]}


def test_errors_are_counted_by_code(mesh, api) -> None:
    before = scrape(mesh.metrics["api"])
    with pytest.raises(grpc.RpcError):
        api.GetServer(api_pb2.GetServerRequest(id="missing"), timeout=5)
    after = scrape(mesh.metrics["api"])
    assert (metric(after, "grpc_server_handled_total", grpc_method="GetServer", grpc_code="NOT_FOUND")
            - metric(before, "grpc_server_handled_total", grpc_method="GetServer", grpc_code="NOT_FOUND")) == 1


def _grpcurl() -> str:
    found = shutil.which("grpcurl") or str(Path.home() / "go" / "bin" / "grpcurl")
    if not os.path.exists(found):
        pytest.fail("grpcurl is not installed (scripts/setup.sh installs it from the Go module proxy)")
    return found


def test_grpcurl_drives_the_api_through_reflection_alone(mesh, image) -> None:
    tool, addr = _grpcurl(), mesh.addresses["api"]
    listed = subprocess.run([tool, "-plaintext", addr, "list"], capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    assert {"drover.v1.ApiService", "grpc.health.v1.Health"} <= set(listed.stdout.split())
    body = json.dumps({"name": "via-grpcurl", "flavorRef": "m1.tiny", "imageRef": image.id})
    anonymous = subprocess.run([tool, "-plaintext", "-d", body, addr, "drover.v1.ApiService/CreateServer"],
                               capture_output=True, text=True, timeout=30)
    assert anonymous.returncode != 0 and "Unauthenticated" in anonymous.stdout + anonymous.stderr
    auth = ["-H", f"authorization: Bearer {mesh.token}"]
    made = subprocess.run([tool, "-plaintext", *auth, "-d", body, addr, "drover.v1.ApiService/CreateServer"],
                          capture_output=True, text=True, timeout=30)
    assert made.returncode == 0, made.stderr
    sid = json.loads(made.stdout)["server"]["id"]
    got = subprocess.run([tool, "-plaintext", *auth, "-d", json.dumps({"id": sid}), addr,
                          "drover.v1.ApiService/WatchServer"], capture_output=True, text=True, timeout=60)
    assert got.returncode == 0, got.stderr
    assert '"SERVER_STATUS_ACTIVE"' in got.stdout
    bad = subprocess.run([tool, "-plaintext", *auth, "-d", json.dumps({"name": ""}), addr,
                          "drover.v1.ApiService/CreateServer"], capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "InvalidArgument" in bad.stdout + bad.stderr
    pki_dir = mesh.pki_dir
    for service in ("conductor", "scheduler", "compute"):
        # Internal ports speak mTLS only: an operator's certificate lists them.
        plain = subprocess.run([tool, "-plaintext", mesh.addresses[service], "list"], capture_output=True,
                               text=True, timeout=30)
        assert plain.returncode != 0
        out = subprocess.run([tool, "-cacert", str(pki_dir / "ca.crt"), "-cert", str(pki_dir / "operator.crt"),
                              "-key", str(pki_dir / "operator.key"), "-servername", f"{service}.drover",
                              mesh.addresses[service], "list"], capture_output=True, text=True, timeout=30)
        assert SERVICE_NAMES[service] in out.stdout


def test_every_service_measures_its_event_loop_lag(mesh) -> None:
    time.sleep(0.6)  # the timer fires every 0.25 s
    for service, url in mesh.metrics.items():
        samples = scrape(url)
        assert metric(samples, "drover_event_loop_lag_seconds_count") >= 1, service
        assert metric(samples, "drover_event_loop_lag_max_seconds") >= 0, service
