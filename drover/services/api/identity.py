"""Who is calling: every ApiService call is authenticated at the edge by a bearer token.

``AuthInterceptor`` verifies the ``authorization: Bearer <JWT>`` metadata before any ApiService
method runs (health and reflection stay open) and refuses the call with UNAUTHENTICATED when it is
missing or bad: there is no default identity. It then applies the RPC's policy rule
(PERMISSION_DENIED). The servicer reads the verified caller with
``identity(context)``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc

from drover.auth.policy import Policy
from drover.auth.tokens import Principal, TokenError, Verifier
from drover.services.common.errors import ApiError, abort

API_METHOD_PREFIX = "/drover.v1.ApiService/"
MAX_REQUEST_ID = 128


@dataclass(frozen=True)
class Identity:
    project_id: str
    user_id: str
    roles: frozenset[str]
    request_id: str

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


_CALLER: ContextVar[Identity] = ContextVar("drover_api_caller")


def identity(context: grpc.aio.ServicerContext) -> Identity:
    """The authenticated caller of the current RPC (set by ``AuthInterceptor``)."""
    return _CALLER.get()


def _metadata(details: Any) -> dict[str, str]:
    return {k: v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)}


def _request_id(md: dict[str, str]) -> str:
    rid = md.get("x-request-id", "")
    return rid if 0 < len(rid) <= MAX_REQUEST_ID and rid.isprintable() else f"req-{uuid.uuid4()}"


def denied(action: str, policy: Policy) -> ApiError:
    return ApiError(grpc.StatusCode.PERMISSION_DENIED,
                    f"policy does not allow {action} to this caller (rule: {policy.rules[action]})")


def enforce(policy: Policy, who: Identity, action: str) -> None:
    """PERMISSION_DENIED unless the policy lets ``who`` do ``action`` (a finer action than the RPC)."""
    if not policy.allows(action, who.roles):
        raise denied(action, policy)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates every ApiService call, then applies the policy rule of its RPC."""

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
        return _as(handler, who)


def _kind(handler: Any) -> tuple[str, Callable[..., Any], Callable[..., Any]]:
    if handler.unary_unary:
        return "unary", handler.unary_unary, grpc.unary_unary_rpc_method_handler
    if handler.unary_stream:
        return "stream", handler.unary_stream, grpc.unary_stream_rpc_method_handler
    if handler.stream_unary:
        return "unary", handler.stream_unary, grpc.stream_unary_rpc_method_handler
    return "stream", handler.stream_stream, grpc.stream_stream_rpc_method_handler


def _as(handler: Any, who: Identity) -> Any:
    """``handler`` running with ``who`` as the caller."""
    kind, fn, factory = _kind(handler)
    if kind == "unary":
        async def unary(request: Any, context: Any) -> Any:
            _CALLER.set(who)
            return await fn(request, context)

        behavior: Callable[..., Any] = unary
    else:
        async def stream(request: Any, context: Any) -> Any:
            _CALLER.set(who)
            async for item in fn(request, context):
                yield item

        behavior = stream
    return factory(behavior, request_deserializer=handler.request_deserializer,
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
