"""Client side: find the caller's token and attach it to every call on a channel."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from drover.auth.keys import ADMIN_TOKEN_FILE

TOKEN_ENV = "DROVER_TOKEN"


def admin_token_path(data_dir: Path) -> Path:
    return data_dir / ADMIN_TOKEN_FILE


def is_loopback(target: str) -> bool:
    host = target.rsplit(":", 1)[0].strip("[]") if ":" in target else target
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(flag: str | None, target: str, data_dir: Path | None) -> str | None:
    """``--token``, then ``DROVER_TOKEN``, then (only for an API on this machine) the admin
    token `drover up` wrote to the data dir. None when there is none."""
    if flag:
        return flag.strip()
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV].strip()
    if data_dir is not None and is_loopback(target):
        path = admin_token_path(data_dir)
        if path.is_file():
            return path.read_text().strip()
    return None


def bearer(token: str) -> tuple[str, str]:
    """The metadata entry that carries ``token``."""
    return ("authorization", f"Bearer {token}")


class _Details(grpc.ClientCallDetails):
    def __init__(self, base: Any, metadata: list[tuple[str, str]]) -> None:
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


class BearerInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                        grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds ``authorization: Bearer <token>`` to every call of a (synchronous) channel."""

    def __init__(self, token: str) -> None:
        self.entry = bearer(token)

    def _with_token(self, details: Any) -> _Details:
        return _Details(details, [*(details.metadata or ()), self.entry])

    def _call(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    intercept_unary_unary = _call
    intercept_unary_stream = _call
    intercept_stream_unary = _call
    intercept_stream_stream = _call


def authorized_channel(target: str, token: str | None, options: Any = None) -> grpc.Channel:
    """A plaintext channel to ``target`` sending ``token`` with every call (none: no header);
    read-only calls are retried by gRPC while the API is unavailable."""
    from drover import retry

    chan = grpc.insecure_channel(target, options=[*retry.CHANNEL_OPTIONS, *(options or [])])
    return grpc.intercept_channel(chan, BearerInterceptor(token)) if token else chan


def _aio_details(details: Any, entry: tuple[str, str]) -> grpc.aio.ClientCallDetails:
    md = grpc.aio.Metadata(*(details.metadata or ()), entry)
    return grpc.aio.ClientCallDetails(details.method, details.timeout, md, details.credentials,
                                      details.wait_for_ready)


class _AioUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, entry: tuple[str, str]) -> None:
        self.entry = entry

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_aio_details(details, self.entry), request)


class _AioServerStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, entry: tuple[str, str]) -> None:
        self.entry = entry

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_aio_details(details, self.entry), request)


class _AioClientStream(grpc.aio.StreamUnaryClientInterceptor):
    def __init__(self, entry: tuple[str, str]) -> None:
        self.entry = entry

    async def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(_aio_details(details, self.entry), request_iterator)


def authorized_aio_channel(target: str, token: str | None, options: Any = None) -> grpc.aio.Channel:
    """The asyncio twin of ``authorized_channel``. (Hot loops had better pass ``metadata=[bearer(token)]``
    per call instead: grpc's aio interceptors cost a little on every call.)"""
    interceptors: list[Any] = []
    if token:
        entry = bearer(token)
        interceptors = [_AioUnary(entry), _AioServerStream(entry), _AioClientStream(entry)]
    return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors or None)
