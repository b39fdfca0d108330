"""A small synchronous client for the CLI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from drover.auth.client import authorized_channel, resolve_token
from drover.cli.output import describe_rpc_error, fail
from drover.v1 import api_pb2, api_pb2_grpc, types_pb2

DEFAULT_URL = "127.0.0.1:8774"


def api_url(url: str | None) -> str:
    return url or os.environ.get("DROVER_URL", DEFAULT_URL)


# Set by the root command's --token option.
token_option: str | None = None


def token_for(target: str) -> str | None:
    """--token, DROVER_TOKEN, or the admin token of a local mesh (`drover up`) in the data dir."""
    from drover.config import load_config

    return resolve_token(token_option, target, load_config().data_path)


@contextmanager
def api(url: str | None) -> Iterator[api_pb2_grpc.ApiServiceStub]:
    target = api_url(url)
    channel = authorized_channel(target, token_for(target))
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


UPLOAD_CHUNK = 1 << 20  # the API's per-message limit for image bytes


def upload_image(stub: api_pb2_grpc.ApiServiceStub, path: str, name: str, *, disk_format: str = "",
                 properties: dict[str, str] | None = None, timeout: float = 600) -> types_pb2.Image:
    """Upload a local file as an image of the caller's project (UploadImage: metadata, then chunks)."""
    import hashlib
    from pathlib import Path

    file = Path(path)
    digest = hashlib.sha256()
    with file.open("rb") as fh:
        for chunk in iter(lambda: fh.read(UPLOAD_CHUNK), b""):
            digest.update(chunk)
    size = file.stat().st_size

    def requests() -> Iterator[api_pb2.UploadImageRequest]:
        yield api_pb2.UploadImageRequest(metadata=api_pb2.UploadImageMetadata(
            name=name, disk_format=disk_format, size_bytes=size, checksum_sha256=digest.hexdigest(),
            properties=properties or {}))
        with file.open("rb") as fh:
            for chunk in iter(lambda: fh.read(UPLOAD_CHUNK), b""):
                yield api_pb2.UploadImageRequest(chunk=chunk)

    return stub.UploadImage(requests(), timeout=timeout).image
