"""The attacks of issue #10, replayed against a real mesh: each is refused with the right status,
stores nothing, and leaves the API serving (no INTERNAL, no frozen event loop)."""

from __future__ import annotations

import base64
import json
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from drover.v1 import api_pb2, types_pb2
from tests.integration.conftest import count_servers

REFUSED = {grpc.StatusCode.INVALID_ARGUMENT}


def _refused(call, codes=REFUSED) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    assert err.value.code() in codes, (err.value.code(), err.value.details()[:200])
    return err.value


def _serving(mesh) -> None:
    with grpc.insecure_channel(mesh.addresses["api"]) as chan:
        status = health_pb2_grpc.HealthStub(chan).Check(health_pb2.HealthCheckRequest(), timeout=5).status
    assert status == health_pb2.HealthCheckResponse.SERVING


def _create(api, image, **kw):
    return lambda: api.CreateServer(api_pb2.CreateServerRequest(
        name=kw.pop("name", "hostile"), flavor_ref=kw.pop("flavor_ref", "m1.tiny"), image_ref=image.id, **kw),
        timeout=30)


def test_oversized_create_fields_are_refused_and_nothing_is_stored(mesh, api, image) -> None:
    before = count_servers(api)
    mega = "x" * (1 << 20)
    cases = {
        "key_name": dict(key_name=mega),
        "availability_zone": dict(availability_zone=mega),
        "networks": dict(networks=[api_pb2.NetworkRequest(uuid="auto")] * 2000),
        "scheduler_hints.same_host": dict(scheduler_hints=api_pb2.SchedulerHints(same_host=["x"] * 100_000)),
        "scheduler_hints.different_host": dict(
            scheduler_hints=api_pb2.SchedulerHints(different_host=["x"] * 1000)),
        "name": dict(name="n" * 256),
    }
    for field, kw in cases.items():
        t0 = time.monotonic()
        err = _refused(_create(api, image, **kw))
        assert field in err.details(), err.details()[:200]
        assert time.monotonic() - t0 < 5
    # Too big for any legal request: refused by gRPC's receive limit, before parsing.
    _refused(_create(api, image, scheduler_hints=api_pb2.SchedulerHints(same_host=["y" * 36] * 100_000)),
             {grpc.StatusCode.RESOURCE_EXHAUSTED})
    assert count_servers(api) == before
    _serving(mesh)


def test_name_filters_cannot_freeze_the_api(mesh, api) -> None:
    t0 = time.monotonic()
    api.ListServers(api_pb2.ListServersRequest(name="^(a|a)*$"), timeout=10)  # RE2: linear time
    api.ListServers(api_pb2.ListServersRequest(name="(x+x+)+y"), timeout=10)
    assert time.monotonic() - t0 < 3
    _refused(lambda: api.ListServers(api_pb2.ListServersRequest(name="a" * (1 << 20)), timeout=10))
    _refused(lambda: api.ListServers(api_pb2.ListServersRequest(name=r"(a)\1"), timeout=10))  # not RE2
    _serving(mesh)


def test_exact_name_lookup_still_works(api, image) -> None:
    made = _create(api, image, name="exact.name(1)")()
    listed = api.ListServers(api_pb2.ListServersRequest(name=r"^exact\.name\(1\)$"), timeout=10).servers
    assert [s.id for s in listed] == [made.server.id]


@pytest.mark.parametrize("token", [
    base64.urlsafe_b64encode(("[" * 100 + "]" * 100).encode()).decode(),
    base64.urlsafe_b64encode(json.dumps([["2020-01-01"], {"id": 1}]).encode()).decode(),
    base64.urlsafe_b64encode(json.dumps(["not a date", "x"]).encode()).decode(),
    "!!!not base64!!!",
    "A" * 5000,
])
def test_forged_page_tokens_are_invalid_arguments(api, token) -> None:
    err = _refused(lambda: api.ListServers(api_pb2.ListServersRequest(page_token=token), timeout=10))
    assert "page_token" in err.details()


@pytest.mark.parametrize("flavor, field", [
    (dict(root_gb=2**62, ephemeral_gb=2**62), "flavor.root_gb"),
    (dict(ephemeral_gb=-1), "flavor.ephemeral_gb"),
    (dict(swap_mb=-512), "flavor.swap_mb"),
    (dict(vcpus=2**31 - 1), "flavor.vcpus"),
    (dict(memory_mb=2**40), "flavor.memory_mb"),
])
def test_flavors_beyond_any_machine_are_refused(api, flavor, field) -> None:
    spec = {"name": f"huge-{field}", "vcpus": 1, "memory_mb": 64, **flavor}
    err = _refused(lambda: api.CreateFlavor(api_pb2.CreateFlavorRequest(flavor=types_pb2.Flavor(**spec)),
                                            timeout=10))
    assert field in err.details()
    assert spec["name"] not in {f.name for f in api.ListFlavors(api_pb2.ListFlavorsRequest(), timeout=10).flavors}


def test_a_very_long_image_path_is_an_invalid_argument(api) -> None:
    err = _refused(lambda: api.CreateImage(api_pb2.CreateImageRequest(name="long", path="/" + "a" * 5000),
                                           timeout=10))
    assert "path" in err.details()


def test_bytes_that_are_not_a_request_are_an_invalid_argument(mesh) -> None:
    with mesh.api_channel() as chan:
        call = chan.unary_unary("/drover.v1.ApiService/GetServer", request_serializer=None,
                                response_deserializer=None)
        _refused(lambda: call(b"\xff\xff\xff\xff\x0f", timeout=10))
    _serving(mesh)
