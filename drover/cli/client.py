"""A small synchronous client for the CLI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from drover.cli.output import describe_rpc_error, fail
from drover.v1 import api_pb2, api_pb2_grpc, types_pb2

DEFAULT_URL = "127.0.0.1:8774"


def api_url(url: str | None) -> str:
    return url or os.environ.get("DROVER_URL", DEFAULT_URL)


@contextmanager
def api(url: str | None) -> Iterator[api_pb2_grpc.ApiServiceStub]:
    channel = grpc.insecure_channel(api_url(url))
    try:
        yield api_pb2_grpc.ApiServiceStub(channel)
    except grpc.RpcError as exc:
        fail(describe_rpc_error(exc))
    finally:
        channel.close()


def find_server(stub: api_pb2_grpc.ApiServiceStub, ref: str, *, deleted: bool = False) -> types_pb2.Server:
    """Resolve a server by id, then by exact name (like openstackclient's find_resource)."""
    try:
        return stub.GetServer(api_pb2.GetServerRequest(id=ref), timeout=10).server
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:  # type: ignore[attr-defined]
            raise
    import re

    resp = stub.ListServers(
        api_pb2.ListServersRequest(name=f"^{re.escape(ref)}$", page_size=2, include_deleted=deleted), timeout=10
    )
    if not resp.servers:
        fail(f"no server with a name or id of {ref!r}")
    if len(resp.servers) > 1:
        fail(f"more than one server is named {ref!r}; use its id")
    return resp.servers[0]


def metadata(**extra: Any) -> list[tuple[str, str]]:
    md = []
    for key, env in (("x-project-id", "DROVER_PROJECT"), ("x-user-id", "DROVER_USER")):
        if os.environ.get(env):
            md.append((key, os.environ[env]))
    return md
