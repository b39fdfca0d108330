"""Every ApiService call needs a valid bearer token; health and reflection stay open."""

from __future__ import annotations

import time

import grpc
import jwt
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from drover.auth import keys, tokens
from drover.config import AuthConfig
from drover.v1 import api_pb2, api_pb2_grpc, types_pb2


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


def _code(call) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_a_reader_reads_but_cannot_create_or_delete(as_caller, image, api) -> None:
    member, reader = as_caller("rbac-p", "member"), as_caller("rbac-p", "reader")
    mine = member.CreateServer(api_pb2.CreateServerRequest(name="rbac-vm", flavor_ref="m1.tiny",
                                                           image_ref=image.id), timeout=10).server
    assert reader.GetServer(api_pb2.GetServerRequest(id=mine.id), timeout=10).server.id == mine.id
    assert [s.id for s in reader.ListServers(api_pb2.ListServersRequest(), timeout=10).servers] == [mine.id]
    before = len(api.ListServers(api_pb2.ListServersRequest(all_projects=True, page_size=1000), timeout=10).servers)
    assert _code(lambda: reader.CreateServer(api_pb2.CreateServerRequest(
        name="nope", flavor_ref="m1.tiny", image_ref=image.id), timeout=10)) == grpc.StatusCode.PERMISSION_DENIED
    assert _code(lambda: reader.DeleteServer(api_pb2.DeleteServerRequest(id=mine.id), timeout=10)) \
        == grpc.StatusCode.PERMISSION_DENIED
    assert _code(lambda: reader.CreateServerGroup(api_pb2.CreateServerGroupRequest(
        name="g", policy="affinity"), timeout=10)) == grpc.StatusCode.PERMISSION_DENIED
    after = api.ListServers(api_pb2.ListServersRequest(all_projects=True, page_size=1000), timeout=10).servers
    assert len(after) == before and mine.id in {s.id for s in after}


def test_admin_only_actions_are_permission_denied_to_members(as_caller) -> None:
    member = as_caller("rbac-p", "member")
    calls = {
        "ListHosts": lambda: member.ListHosts(api_pb2.ListHostsRequest(), timeout=10),
        "CreateFlavor": lambda: member.CreateFlavor(api_pb2.CreateFlavorRequest(flavor=types_pb2.Flavor(
            name="mine", vcpus=1, memory_mb=64)), timeout=10),
        "all_projects": lambda: member.ListServers(api_pb2.ListServersRequest(all_projects=True), timeout=10),
        "include_deleted": lambda: member.ListServers(api_pb2.ListServersRequest(include_deleted=True), timeout=10),
        "group all_projects": lambda: member.ListServerGroups(
            api_pb2.ListServerGroupsRequest(all_projects=True), timeout=10),
    }
    for name, call in calls.items():
        assert _code(call) == grpc.StatusCode.PERMISSION_DENIED, name
    assert "mine" not in {f.name for f in member.ListFlavors(api_pb2.ListFlavorsRequest(), timeout=10).flavors}


def test_another_projects_things_are_not_found_not_forbidden(as_caller, image) -> None:
    owner, stranger = as_caller("owner-p", "member"), as_caller("stranger-p", "member")
    server = owner.CreateServer(api_pb2.CreateServerRequest(name="private", flavor_ref="m1.tiny",
                                                            image_ref=image.id), timeout=10).server
    group = owner.CreateServerGroup(api_pb2.CreateServerGroupRequest(name="pg", policy="affinity"),
                                    timeout=10).server_group
    for missing in (server.id, "no-such-id"):  # the same answer whether it exists or not
        for call in (
            lambda i=missing: stranger.GetServer(api_pb2.GetServerRequest(id=i), timeout=10),
            lambda i=missing: stranger.DeleteServer(api_pb2.DeleteServerRequest(id=i), timeout=10),
            lambda i=missing: list(stranger.WatchServer(api_pb2.WatchServerRequest(id=i), timeout=10)),
            lambda i=missing: stranger.ListServerActions(api_pb2.ListServerActionsRequest(server_id=i), timeout=10),
            lambda i=missing: stranger.GetConsoleOutput(api_pb2.GetConsoleOutputRequest(id=i), timeout=10),
        ):
            assert _code(call) == grpc.StatusCode.NOT_FOUND
    for missing in (group.id, "no-such-group"):
        assert _code(lambda i=missing: stranger.GetServerGroup(api_pb2.GetServerGroupRequest(id=i), timeout=10)) \
            == grpc.StatusCode.NOT_FOUND
        assert _code(lambda i=missing: stranger.DeleteServerGroup(api_pb2.DeleteServerGroupRequest(id=i),
                                                                  timeout=10)) == grpc.StatusCode.NOT_FOUND
    # A hint naming another project's server reads exactly like one naming no server.
    details = []
    for ref in (server.id, "no-such-server"):
        with pytest.raises(grpc.RpcError) as err:
            stranger.CreateServer(api_pb2.CreateServerRequest(
                name="nosy", flavor_ref="m1.tiny", image_ref=image.id,
                scheduler_hints=api_pb2.SchedulerHints(same_host=[ref])), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details.append(err.value.details().replace(ref, "<id>"))
    assert details[0] == details[1]
    assert owner.GetServer(api_pb2.GetServerRequest(id=server.id), timeout=10).server.id == server.id
