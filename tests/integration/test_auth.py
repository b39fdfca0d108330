"""Every ApiService call needs a valid bearer token; health and reflection stay open."""

from __future__ import annotations

import time

import grpc
import jwt
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from drover.auth import keys, tokens
from drover.config import AuthConfig
from drover.v1 import api_pb2, api_pb2_grpc


def _bad_tokens(mesh, tmp_path) -> dict[str, str | None]:
    key = keys.load_signing_key(mesh.data_dir)
    auth = AuthConfig()
    now = int(time.time())
    base = {"iss": auth.issuer, "aud": auth.audience, "sub": "mallory", "project_id": "admin",
            "roles": ["admin"], "exp": now + 600}
    kid = {"kid": keys.key_id(key)}
    stranger = keys.ensure_signing_key(tmp_path / "stranger")
    return {
        "none": None,
        "garbage": "not-a-jwt",
        "expired": jwt.encode({**base, "exp": now - 3600}, key, algorithm=tokens.ALGORITHM, headers=kid),
        "wrong issuer": jwt.encode({**base, "iss": "evil"}, key, algorithm=tokens.ALGORITHM, headers=kid),
        "wrong audience": jwt.encode({**base, "aud": "other"}, key, algorithm=tokens.ALGORITHM, headers=kid),
        "foreign key": tokens.issue(stranger, auth, project="admin", user="mallory", roles=["admin"], ttl=600),
        "unsigned": jwt.encode(base, None, algorithm="none", headers=kid),
    }


@pytest.mark.parametrize("case", ["none", "garbage", "expired", "wrong issuer", "wrong audience", "foreign key",
                                  "unsigned"])
def test_a_call_without_a_valid_token_is_unauthenticated_and_changes_nothing(mesh, api, image, tmp_path,
                                                                            case) -> None:
    token = _bad_tokens(mesh, tmp_path)[case]
    before = len(api.ListServers(api_pb2.ListServersRequest(page_size=1000), timeout=10).servers)
    with mesh.api_channel(token or "") as chan:
        stub = api_pb2_grpc.ApiServiceStub(chan)
        calls = [
            lambda: stub.CreateServer(api_pb2.CreateServerRequest(name="x", flavor_ref="m1.tiny",
                                                                  image_ref=image.id), timeout=10),
            lambda: stub.ListFlavors(api_pb2.ListFlavorsRequest(), timeout=10),
            lambda: list(stub.WatchServer(api_pb2.WatchServerRequest(id="x"), timeout=10)),
        ]
        for call in calls:
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, err.value.details()
    assert len(api.ListServers(api_pb2.ListServersRequest(page_size=1000), timeout=10).servers) == before


def test_two_authorization_headers_are_refused(mesh, image) -> None:
    with mesh.api_channel() as chan:
        stub = api_pb2_grpc.ApiServiceStub(chan)
        with pytest.raises(grpc.RpcError) as err:
            stub.ListFlavors(api_pb2.ListFlavorsRequest(), timeout=10,
                             metadata=[("authorization", "Bearer x")])
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_health_stays_open(mesh) -> None:
    with grpc.insecure_channel(mesh.addresses["api"]) as chan:
        resp = health_pb2_grpc.HealthStub(chan).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_a_token_carries_its_project_and_user_into_what_is_stored(as_caller, image) -> None:
    server = as_caller("proj-x", "member", user="xavier").CreateServer(
        api_pb2.CreateServerRequest(name="owned", flavor_ref="m1.tiny", image_ref=image.id), timeout=10).server
    assert (server.project_id, server.user_id) == ("proj-x", "xavier")
