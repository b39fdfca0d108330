"""Hostile inputs found by probing a running mesh after issue #10's work: each is refused at the
edge with the right status, stores nothing, and leaves the services serving."""

from __future__ import annotations

import grpc
import pytest

from drover.v1 import api_pb2, types_pb2
from tests.integration.conftest import count_servers

# A NUL character in any request string: PostgreSQL's text columns refuse it, so it reached the
# store as a DataError (INTERNAL) — in the create's columns and in every lookup by id or name.
NUL_CALLS = {
    "key_name": lambda api, image: api.CreateServer(api_pb2.CreateServerRequest(
        name="nul", flavor_ref="m1.tiny", image_ref=image.id, key_name="k\0"), timeout=30),
    "availability_zone": lambda api, image: api.CreateServer(api_pb2.CreateServerRequest(
        name="nul", flavor_ref="m1.tiny", image_ref=image.id, availability_zone="nova\0"), timeout=30),
    "metadata": lambda api, image: api.CreateServer(api_pb2.CreateServerRequest(
        name="nul", flavor_ref="m1.tiny", image_ref=image.id, metadata={"k\0": "v"}), timeout=30),
    "id": lambda api, image: api.GetServer(api_pb2.GetServerRequest(id="a\0"), timeout=10),
    "host": lambda api, image: api.ListServers(api_pb2.ListServersRequest(host="h\0"), timeout=10),
    "name": lambda api, image: api.ListServers(api_pb2.ListServersRequest(name="n\0"), timeout=10),
    "image id": lambda api, image: api.GetImage(api_pb2.GetImageRequest(id="i\0"), timeout=10),
    "flavor id": lambda api, image: api.GetFlavor(api_pb2.GetFlavorRequest(id="f\0"), timeout=10),
    "flavor extra spec": lambda api, image: api.CreateFlavor(api_pb2.CreateFlavorRequest(flavor=types_pb2.Flavor(
        name="nul-flavor", vcpus=1, memory_mb=64, extra_specs={"k": "\0"})), timeout=10),
}


def check_nul_refused(api, image) -> None:
    before = count_servers(api)
    for what, call in NUL_CALLS.items():
        with pytest.raises(grpc.RpcError) as err:
            call(api, image)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (what, err.value.code(), err.value.details())
        assert "NUL" in err.value.details(), what
    assert count_servers(api) == before


def test_nul_characters_are_invalid_arguments_and_store_nothing(api, image) -> None:
    check_nul_refused(api, image)
