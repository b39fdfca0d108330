"""The API edge around a method that fails unexpectedly, on a real in-process gRPC server."""

from __future__ import annotations

import grpc
import pytest

from drover.auth import keys, policy, tokens
from drover.config import AuthConfig
from drover.services.api.edge import ApiEdge
from drover.services.api.identity import identity
from drover.v1 import api_pb2, api_pb2_grpc


class Broken(api_pb2_grpc.ApiServiceServicer):
    async def GetServer(self, request, context):
        raise RuntimeError("secret internals /etc/drover/db-password")

    async def ListFlavors(self, request, context):
        who = identity(context)
        return api_pb2.ListFlavorsResponse(flavors=[{"name": f"{who.project_id}/{who.user_id}"}])


@pytest.fixture
async def edge_server(tmp_path):
    key = keys.ensure_signing_key(tmp_path)
    auth = AuthConfig()
    server = grpc.aio.server(interceptors=[ApiEdge(tokens.Verifier(auth, key), policy.Policy())])
    api_pb2_grpc.add_ApiServiceServicer_to_server(Broken(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    token = tokens.issue(key, auth, project="p", user="u", roles=["member"], ttl=60)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as chan:
        yield api_pb2_grpc.ApiServiceStub(chan), [("authorization", f"Bearer {token}")], chan
    await server.stop(0)


async def test_an_unexpected_exception_is_internal_with_the_request_id_only(edge_server) -> None:
    stub, md, _ = edge_server
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetServer(api_pb2.GetServerRequest(id="x"), metadata=[*md, ("x-request-id", "req-abc")])
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert err.value.details() == "internal error (request id req-abc)"


async def test_the_method_sees_the_tokens_identity(edge_server) -> None:
    stub, md, _ = edge_server
    resp = await stub.ListFlavors(api_pb2.ListFlavorsRequest(), metadata=md)
    assert resp.flavors[0].name == "p/u"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListFlavors(api_pb2.ListFlavorsRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_unparsable_and_oversized_requests_are_invalid_arguments(edge_server) -> None:
    stub, md, chan = edge_server
    raw = chan.unary_unary("/drover.v1.ApiService/GetServer")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await raw(b"\x0a\xff\xff\xff\xff\x0f", metadata=md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetServer(api_pb2.GetServerRequest(id="x" * 256), metadata=md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "id" in err.value.details()
