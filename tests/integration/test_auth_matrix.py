"""Every ApiService RPC × every kind of caller, against real processes: the expected status, and
nothing stored when the call is refused.

The victim is project ``victim-p``: its server, group and private image are the targets.
Callers: no token, an expired token, a token of a foreign issuer, a member of another project,
a reader / a member of the victim project, and an admin.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable
from typing import Any

import grpc
import jwt
import pytest

from drover.auth import keys, tokens
from drover.cli.client import upload_image
from drover.config import AuthConfig
from drover.v1 import api_pb2, api_pb2_grpc, types_pb2
from tests.integration.conftest import watch

OK, UNAUTH, DENIED, MISSING, BAD = (grpc.StatusCode.OK, grpc.StatusCode.UNAUTHENTICATED,
                                    grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND,
                                    grpc.StatusCode.INVALID_ARGUMENT)
CALLERS = ("no token", "expired", "wrong issuer", "other member", "reader", "member", "admin")
_seq = itertools.count()


class Victim:
    """The victim project's things, and how to make fresh ones (for the destructive RPCs)."""

    def __init__(self, mesh, api, image_file) -> None:
        self.mesh, self.api, self.image_file = mesh, api, image_file
        self.member = api_pb2_grpc.ApiServiceStub(mesh.api_channel(mesh.issue_token("victim-p", "vic", ["member"])))
        self.server = self.new_server()
        watch(self.member, self.server)
        self.group = self.new_group()
        self.image = self.new_image()
        self.fresh = ""

    def new_server(self) -> str:
        return self.member.CreateServer(api_pb2.CreateServerRequest(
            name=f"victim-{next(_seq)}", flavor_ref="m1.tiny", image_ref=self.public_image()), timeout=10).server.id

    def public_image(self) -> str:
        if not hasattr(self, "_public"):
            self._public = self.api.CreateImage(api_pb2.CreateImageRequest(
                name="matrix-public", path=str(self.image_file), disk_format="raw"), timeout=10).image.id
        return self._public

    def new_group(self) -> str:
        return self.member.CreateServerGroup(api_pb2.CreateServerGroupRequest(
            name=f"vg-{next(_seq)}", policy="anti-affinity"), timeout=10).server_group.id

    def new_image(self) -> str:
        return upload_image(self.member, str(self.image_file), f"victim-img-{next(_seq)}").id


def _upload_request():
    body = b"\0" * 4096
    yield api_pb2.UploadImageRequest(metadata=api_pb2.UploadImageMetadata(
        name=f"up-{next(_seq)}", size_bytes=len(body), checksum_sha256=hashlib.sha256(body).hexdigest()))
    yield api_pb2.UploadImageRequest(chunk=body)


# RPC (or RPC:variant) → (call(stub, victim), expected for: other member, reader, member, admin).
# The unauthenticated callers always get UNAUTHENTICATED.
Call = Callable[[api_pb2_grpc.ApiServiceStub, Victim], Any]
MATRIX: dict[str, tuple[Call, tuple[grpc.StatusCode, ...]]] = {
    "CreateServer": (lambda s, v: s.CreateServer(api_pb2.CreateServerRequest(
        name="m", flavor_ref="m1.tiny", image_ref=v.image), timeout=10), (MISSING, DENIED, OK, OK)),
    "CreateServer:hint": (lambda s, v: s.CreateServer(api_pb2.CreateServerRequest(
        name="m", flavor_ref="m1.tiny", image_ref=v.public_image(),
        scheduler_hints=api_pb2.SchedulerHints(same_host=[v.server])), timeout=10), (BAD, DENIED, OK, OK)),
    "CreateServer:group": (lambda s, v: s.CreateServer(api_pb2.CreateServerRequest(
        name="m", flavor_ref="m1.tiny", image_ref=v.public_image(),
        scheduler_hints=api_pb2.SchedulerHints(group=v.group)), timeout=10), (BAD, DENIED, OK, OK)),
    "GetServer": (lambda s, v: s.GetServer(api_pb2.GetServerRequest(id=v.server), timeout=10),
                  (MISSING, OK, OK, OK)),
    "ListServers": (lambda s, v: s.ListServers(api_pb2.ListServersRequest(), timeout=10), (OK, OK, OK, OK)),
    "ListServers:all_projects": (lambda s, v: s.ListServers(api_pb2.ListServersRequest(all_projects=True),
                                                            timeout=10), (DENIED, DENIED, DENIED, OK)),
    "ListServers:include_deleted": (lambda s, v: s.ListServers(api_pb2.ListServersRequest(include_deleted=True),
                                                               timeout=10), (DENIED, DENIED, DENIED, OK)),
    "DeleteServer": (lambda s, v: s.DeleteServer(api_pb2.DeleteServerRequest(id=v.fresh), timeout=10),
                     (MISSING, DENIED, OK, OK)),
    "WatchServer": (lambda s, v: list(s.WatchServer(api_pb2.WatchServerRequest(id=v.server), timeout=10)),
                    (MISSING, OK, OK, OK)),
    "ListServerActions": (lambda s, v: s.ListServerActions(api_pb2.ListServerActionsRequest(server_id=v.server),
                                                           timeout=10), (MISSING, OK, OK, OK)),
    "GetConsoleOutput": (lambda s, v: s.GetConsoleOutput(api_pb2.GetConsoleOutputRequest(id=v.server),
                                                         timeout=10), (MISSING, OK, OK, OK)),
    "ListFlavors": (lambda s, v: s.ListFlavors(api_pb2.ListFlavorsRequest(), timeout=10), (OK, OK, OK, OK)),
    "GetFlavor": (lambda s, v: s.GetFlavor(api_pb2.GetFlavorRequest(id="m1.tiny"), timeout=10), (OK, OK, OK, OK)),
    "CreateFlavor": (lambda s, v: s.CreateFlavor(api_pb2.CreateFlavorRequest(flavor=types_pb2.Flavor(
        name=f"fl-{next(_seq)}", vcpus=1, memory_mb=64)), timeout=10), (DENIED, DENIED, DENIED, OK)),
    "CreateImage": (lambda s, v: s.CreateImage(api_pb2.CreateImageRequest(
        name=f"ci-{next(_seq)}", path=str(v.image_file), disk_format="raw"), timeout=10),
        (DENIED, DENIED, DENIED, OK)),
    "UploadImage": (lambda s, v: s.UploadImage(_upload_request(), timeout=10), (OK, DENIED, OK, OK)),
    "ListImages": (lambda s, v: s.ListImages(api_pb2.ListImagesRequest(), timeout=10), (OK, OK, OK, OK)),
    "GetImage": (lambda s, v: s.GetImage(api_pb2.GetImageRequest(id=v.image), timeout=10), (MISSING, OK, OK, OK)),
    "DeleteImage": (lambda s, v: s.DeleteImage(api_pb2.DeleteImageRequest(id=v.fresh), timeout=10),
                    (MISSING, DENIED, OK, OK)),
    "DeleteImage:public": (lambda s, v: s.DeleteImage(api_pb2.DeleteImageRequest(id=v.fresh), timeout=10),
                           (DENIED, DENIED, DENIED, OK)),
    "CreateServerGroup": (lambda s, v: s.CreateServerGroup(api_pb2.CreateServerGroupRequest(
        name="g", policy="affinity"), timeout=10), (OK, DENIED, OK, OK)),
    "GetServerGroup": (lambda s, v: s.GetServerGroup(api_pb2.GetServerGroupRequest(id=v.group), timeout=10),
                       (MISSING, OK, OK, OK)),
    "ListServerGroups": (lambda s, v: s.ListServerGroups(api_pb2.ListServerGroupsRequest(), timeout=10),
                         (OK, OK, OK, OK)),
    "ListServerGroups:all_projects": (lambda s, v: s.ListServerGroups(
        api_pb2.ListServerGroupsRequest(all_projects=True), timeout=10), (DENIED, DENIED, DENIED, OK)),
    "DeleteServerGroup": (lambda s, v: s.DeleteServerGroup(api_pb2.DeleteServerGroupRequest(id=v.fresh),
                                                           timeout=10), (MISSING, DENIED, OK, OK)),
    "ListNetworks": (lambda s, v: s.ListNetworks(api_pb2.ListNetworksRequest(), timeout=10), (OK, OK, OK, OK)),
    "ListHosts": (lambda s, v: s.ListHosts(api_pb2.ListHostsRequest(), timeout=10), (DENIED, DENIED, DENIED, OK)),
}


# The destructive RPCs each get a fresh target, made before the "nothing stored" snapshot.
FRESH: dict[str, Callable[[Victim], str]] = {
    "DeleteServer": lambda v: v.new_server(),
    "DeleteImage": lambda v: v.new_image(),
    "DeleteImage:public": lambda v: s_admin_image(v),
    "DeleteServerGroup": lambda v: v.new_group(),
}


def s_admin_image(v: Victim) -> str:
    """A fresh public image (an admin registered it) no server uses."""
    return v.api.CreateImage(api_pb2.CreateImageRequest(name=f"pub-{next(_seq)}", path=str(v.image_file),
                                                        disk_format="raw"), timeout=10).image.id


def test_the_matrix_covers_every_rpc() -> None:
    rpcs = {m.name for m in api_pb2.DESCRIPTOR.services_by_name["ApiService"].methods}
    assert rpcs == {k.split(":")[0] for k in MATRIX}


@pytest.fixture(scope="module")
def victim(mesh, api, image_file) -> Victim:
    return Victim(mesh, api, image_file)


@pytest.fixture(scope="module")
def callers(mesh, tmp_path_factory) -> dict[str, api_pb2_grpc.ApiServiceStub]:
    key = keys.load_signing_key(mesh.data_dir)
    auth = AuthConfig()
    now = int(time.time())
    claims = {"iss": auth.issuer, "aud": auth.audience, "sub": "x", "project_id": "victim-p", "roles": ["admin"]}
    stranger = keys.ensure_signing_key(tmp_path_factory.mktemp("foreign"))
    toks = {
        "no token": "",
        "expired": jwt.encode({**claims, "exp": now - 600}, key, algorithm=tokens.ALGORITHM,
                              headers={"kid": keys.key_id(key)}),
        "wrong issuer": jwt.encode({**claims, "iss": "https://evil.example", "exp": now + 600}, stranger,
                                   algorithm=tokens.ALGORITHM, headers={"kid": keys.key_id(stranger)}),
        "other member": mesh.issue_token("other-p", "o", ["member"]),
        "reader": mesh.issue_token("victim-p", "r", ["reader"]),
        "member": mesh.issue_token("victim-p", "m", ["member"]),
        "admin": mesh.token,
    }
    return {name: api_pb2_grpc.ApiServiceStub(mesh.api_channel(tok)) for name, tok in toks.items()}


def _snapshot(api) -> tuple[int, ...]:
    servers, token = 0, ""
    while True:
        resp = api.ListServers(api_pb2.ListServersRequest(page_size=1000, page_token=token, include_deleted=True,
                                                          all_projects=True), timeout=30)
        servers += len(resp.servers)
        token = resp.next_page_token
        if not token:
            break
    return (servers,
            len(api.ListImages(api_pb2.ListImagesRequest(), timeout=10).images),
            len(api.ListFlavors(api_pb2.ListFlavorsRequest(), timeout=10).flavors),
            len(api.ListServerGroups(api_pb2.ListServerGroupsRequest(all_projects=True), timeout=10).server_groups))


@pytest.mark.parametrize("rpc", list(MATRIX))
def test_rpc_by_caller(rpc, victim, callers, api) -> None:
    call, expected = MATRIX[rpc]
    want = dict(zip(CALLERS, (UNAUTH, UNAUTH, UNAUTH, *expected), strict=True))
    got = {}
    for caller in CALLERS:
        if rpc in FRESH:
            victim.fresh = FRESH[rpc](victim)
        before = _snapshot(api)
        try:
            call(callers[caller], victim)
            got[caller] = OK
        except grpc.RpcError as exc:
            got[caller] = exc.code()
            assert _snapshot(api) == before, (rpc, caller, "a refused call changed the store")
            if rpc == "DeleteServer":  # and the server it named is not being deleted
                target = api.GetServer(api_pb2.GetServerRequest(id=victim.fresh), timeout=10).server
                assert target.task_state != types_pb2.TASK_STATE_DELETING
    assert got == want
