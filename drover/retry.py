"""Client retries: gRPC's retry policy for the read-only ApiService calls, and a retry loop for the
calls that change something, which are safe to repeat only with a client token.

UNAVAILABLE (the API restarting) and DEADLINE_EXCEEDED (an answer lost) are retried with
exponential backoff; anything else is the answer.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

T = TypeVar("T")

_READ_ONLY = ("GetServer", "ListServers", "ListServerActions", "GetConsoleOutput", "ListFlavors", "GetFlavor",
              "ListImages", "GetImage", "ListNetworks", "ListHosts", "GetServerGroup", "ListServerGroups")
SERVICE_CONFIG = json.dumps({"methodConfig": [{
    "name": [{"service": "drover.v1.ApiService", "method": m} for m in _READ_ONLY],
    "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.2s", "maxBackoff": "2s", "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"]},
}]})
# Channel options that turn the policy on, and find a restarted API again within ~2 s.
CHANNEL_OPTIONS = [("grpc.enable_retries", 1), ("grpc.service_config", SERVICE_CONFIG),
                   ("grpc.initial_reconnect_backoff_ms", 200), ("grpc.min_reconnect_backoff_ms", 200),
                   ("grpc.max_reconnect_backoff_ms", 2000)]
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def new_token() -> str:
    """A client token for one logical request (reused by its retries)."""
    return uuid.uuid4().hex


def _backoff(attempt: int) -> float:
    return float(min(0.2 * 2 ** attempt, 2.0))


def call(fn: Callable[[], T], *, deadline: float = 60.0) -> T:
    """``fn()`` until it is not UNAVAILABLE / DEADLINE_EXCEEDED or ``deadline`` seconds passed."""
    give_up, attempt = time.monotonic() + deadline, 0
    while True:
        try:
            return fn()
        except grpc.RpcError as exc:
            if exc.code() not in RETRYABLE or time.monotonic() + _backoff(attempt) > give_up:  # type: ignore[attr-defined]
                raise
        time.sleep(_backoff(attempt))
        attempt += 1


async def call_async(fn: Callable[[], Awaitable[T]], *, deadline: float = 60.0) -> T:
    """``call`` for grpc.aio."""
    give_up, attempt = time.monotonic() + deadline, 0
    while True:
        try:
            return await fn()
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in RETRYABLE or time.monotonic() + _backoff(attempt) > give_up:
                raise
        await asyncio.sleep(_backoff(attempt))
        attempt += 1
