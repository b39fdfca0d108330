"""The ApiService edge: what every call goes through before (and around) its method.

1. Authentication: the ``authorization: Bearer <JWT>`` metadata is verified; missing or bad is
   UNAUTHENTICATED — there is no default identity. Health and reflection stay open.
2. Policy: the RPC's rule (``drover.auth.policy``) — PERMISSION_DENIED.
3. Bounds: every string, list and bounded number of the request (``validation.check_bounds``) —
   INVALID_ARGUMENT with the fields; a request that does not even parse, too.
4. Expiry: a stream (WatchServer) lives no longer than the token it was opened with; it then ends
   UNAUTHENTICATED ("token expired") and the client re-opens it with a fresh token (since_revision
   replays what it missed). Unary calls are checked once, at their start.
5. Errors: anything unexpected escaping the method is INTERNAL with the request id (logged with its
   traceback here, never sent).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from drover.auth.policy import Policy
from drover.auth.tokens import Principal, TokenError, Verifier
from drover.services.api.identity import CALLER, Identity, denied
from drover.services.api.validation import refusals
from drover.services.common.errors import REQUEST_ID, ApiError, abort, internal_error, invalid_argument, is_abort

log = logging.getLogger(__name__)

API_METHOD_PREFIX = "/drover.v1.ApiService/"
MAX_REQUEST_ID = 128


class _Unparsable:
    """Stands for a request message that failed to parse (answered INVALID_ARGUMENT, not INTERNAL)."""


UNPARSABLE = _Unparsable()


def _metadata(details: Any) -> dict[str, str]:
    return {k: v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)}


def _request_id(md: dict[str, str]) -> str:
    rid = md.get("x-request-id", "")
    return rid if 0 < len(rid) <= MAX_REQUEST_ID and rid.isprintable() else f"req-{uuid.uuid4()}"


class ApiEdge(grpc.aio.ServerInterceptor):
    """Authenticates every ApiService call, applies its policy rule, bounds its request, guards errors."""

    def __init__(self, verifier: Verifier, policy: Policy) -> None:
        self.verifier = verifier
        self.policy = policy

    async def principal(self, details: Any) -> Principal:
        headers = [v for k, v in (details.invocation_metadata or ()) if k == "authorization"]
        if len(headers) > 1:
            raise TokenError("more than one authorization header")
        header = headers[0] if headers and isinstance(headers[0], str) else ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenError("missing bearer token (authorization: Bearer <token>)")
        token = token.strip()
        if self.verifier.jwks and not self.verifier.knows_key(token):
            # An OIDC issuer may have rotated its keys: fetch its JWKS again, off the event loop.
            await asyncio.to_thread(self.verifier.refresh)
        return self.verifier.verify(token)

    async def intercept_service(self, continuation: Callable[..., Any], details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or not details.method.startswith(API_METHOD_PREFIX):
            return handler
        md = _metadata(details)
        try:
            p = await self.principal(details)
        except TokenError as exc:
            return _refusing(handler, ApiError(grpc.StatusCode.UNAUTHENTICATED, str(exc)))
        action = details.method[len(API_METHOD_PREFIX):]
        if action not in self.policy.rules:  # an RPC the policy table forgot: closed, not open
            return _refusing(handler, ApiError(grpc.StatusCode.PERMISSION_DENIED, f"no policy for {action}"))
        if not self.policy.allows(action, p.roles):
            return _refusing(handler, denied(action, self.policy))
        who = Identity(project_id=p.project_id, user_id=p.user_id, roles=p.roles, request_id=_request_id(md))
        return _as(handler, who, p.valid_until)


def _kind(handler: Any) -> tuple[str, Callable[..., Any], Callable[..., Any]]:
    if handler.unary_unary:
        return "unary", handler.unary_unary, grpc.unary_unary_rpc_method_handler
    if handler.unary_stream:
        return "stream", handler.unary_stream, grpc.unary_stream_rpc_method_handler
    if handler.stream_unary:
        return "unary", handler.stream_unary, grpc.stream_unary_rpc_method_handler
    return "stream", handler.stream_stream, grpc.stream_stream_rpc_method_handler


def _refusal(request: Any) -> ApiError | None:
    """Why a single request message is refused before its method runs, if it is."""
    if request is UNPARSABLE:
        return invalid_argument([("request", "is not a valid message of this RPC")])
    bad = refusals(request)
    return invalid_argument(bad) if bad else None


async def _internal(context: Any, exc: BaseException, who: Identity) -> None:
    if isinstance(exc, ApiError):
        await abort(context, exc)
    if is_abort(exc):
        raise exc
    await abort(context, internal_error(exc, who.request_id))


def _parse_with(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def parse(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception:  # a DecodeError, or anything the parser raises on hostile bytes
            return UNPARSABLE

    return parse


async def _until(items: AsyncIterator[Any], valid_until: float) -> AsyncIterator[Any]:
    """``items`` until the wall clock reaches ``valid_until``; then UNAUTHENTICATED. The wait for
    each next item carries one timer set to the token's expiry (on the loop's monotonic clock, from
    the wall-clock time left when the wait began): nothing wakes up before then, and no task is
    made per item, which a stream of many small messages would pay for."""
    try:
        while True:
            remaining = valid_until - time.time()
            if remaining <= 0:
                raise ApiError(grpc.StatusCode.UNAUTHENTICATED, "token expired: open the stream again with a new token")
            expiry = asyncio.timeout(remaining if remaining != math.inf else None)
            try:
                async with expiry:
                    item = await anext(items)
            except StopAsyncIteration:
                return
            except TimeoutError:
                if expiry.expired():
                    raise ApiError(grpc.StatusCode.UNAUTHENTICATED,
                                   "token expired: open the stream again with a new token") from None
                raise
            yield item
    finally:
        await items.aclose()  # type: ignore[attr-defined]


def _as(handler: Any, who: Identity, valid_until: float = math.inf) -> Any:
    """``handler`` running with ``who`` as the caller, behind the bounds and the error guard."""
    kind, fn, factory = _kind(handler)
    single = not handler.request_streaming

    async def enter(request: Any, context: Any) -> None:
        """Every call's start, either kind: who is calling, and a single request's bounds."""
        CALLER.set(who)
        REQUEST_ID.set(who.request_id)
        err = _refusal(request) if single else None
        if err is not None:
            await abort(context, err)

    if kind == "unary":
        async def unary(request: Any, context: Any) -> Any:
            await enter(request, context)
            try:
                return await fn(request, context)
            except Exception as exc:
                await _internal(context, exc, who)

        behavior: Callable[..., Any] = unary
    else:
        async def stream(request: Any, context: Any) -> Any:
            await enter(request, context)
            try:
                async for item in _until(fn(request, context), valid_until):
                    yield item
            except Exception as exc:
                await _internal(context, exc, who)

        behavior = stream
    return factory(behavior, request_deserializer=_parse_with(handler.request_deserializer),
                   response_serializer=handler.response_serializer)


def _refusing(handler: Any, err: ApiError) -> Any:
    """A handler of ``handler``'s kind that only refuses the call (the request is not even parsed)."""
    kind, _fn, factory = _kind(handler)
    if kind == "unary":
        async def unary(request: Any, context: Any) -> Any:
            await abort(context, err)

        behavior: Callable[..., Any] = unary
    else:
        async def stream(request: Any, context: Any) -> Any:
            await abort(context, err)
            yield  # pragma: no cover - abort raises

        behavior = stream
    return factory(behavior)
