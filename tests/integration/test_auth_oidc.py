"""An external OIDC issuer, trusted through its JWKS served over HTTP, signs tokens the API accepts."""

from __future__ import annotations

import http.server
import json
import threading
import time

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from drover.localmesh import LocalMesh
from drover.v1 import api_pb2, api_pb2_grpc

ISSUER = "https://idp.example/realms/cloud"


@pytest.fixture(scope="module")
def idp():
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())), "kid": "idp-key-1", "alg": "ES256"}
    body = json.dumps({"keys": [jwk]}).encode()

    class Jwks(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield key, f"http://127.0.0.1:{server.server_port}/certs"
    server.shutdown()


@pytest.fixture(scope="module")
def oidc_mesh(idp, tmp_path_factory):
    _key, url = idp
    issuers = json.dumps([{"issuer": ISSUER, "audience": "drover-api", "jwks": url, "project_claim": "tenant",
                           "roles_claim": "groups"}])
    mesh = LocalMesh.on_free_ports(tmp_path_factory.mktemp("oidc"), AUTH__OIDC=issuers)
    mesh.start()
    yield mesh
    mesh.stop()


def _token(key, **over) -> str:
    claims = {"iss": ISSUER, "aud": "drover-api", "sub": "carol", "tenant": "oidc-p", "groups": ["reader"],
              "exp": int(time.time()) + 300, **over}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": "idp-key-1"})


def _code(call) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_an_oidc_token_acts_with_its_claims(oidc_mesh, idp) -> None:
    key, _url = idp
    with oidc_mesh.api_channel(_token(key)) as chan:
        stub = api_pb2_grpc.ApiServiceStub(chan)
        assert _code(lambda: stub.ListServers(api_pb2.ListServersRequest(), timeout=10)) == grpc.StatusCode.OK
        assert _code(lambda: stub.CreateServerGroup(api_pb2.CreateServerGroupRequest(
            name="g", policy="affinity"), timeout=10)) == grpc.StatusCode.PERMISSION_DENIED  # a reader
    with oidc_mesh.api_channel(_token(key, groups=["member"])) as chan:
        group = api_pb2_grpc.ApiServiceStub(chan).CreateServerGroup(api_pb2.CreateServerGroupRequest(
            name="g", policy="affinity"), timeout=10).server_group
        assert (group.project_id, group.user_id) == ("oidc-p", "carol")


def test_the_idp_key_is_trusted_only_for_its_issuer_and_audience(oidc_mesh, idp) -> None:
    key, _url = idp
    for token in (_token(key, iss="drover"), _token(key, aud="drover"), _token(key, exp=int(time.time()) - 600)):
        with oidc_mesh.api_channel(token) as chan:
            assert _code(lambda c=chan: api_pb2_grpc.ApiServiceStub(c).ListFlavors(
                api_pb2.ListFlavorsRequest(), timeout=10)) == grpc.StatusCode.UNAUTHENTICATED
