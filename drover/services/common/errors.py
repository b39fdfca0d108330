"""gRPC errors with rich details, and a guard that never lets a traceback reach a client."""

from __future__ import annotations

import functools
import inspect
import logging
import uuid
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

log = logging.getLogger(__name__)

# The current request's id (the API edge sets the caller's); INTERNAL errors quote it.
REQUEST_ID: ContextVar[str] = ContextVar("drover_request_id")

F = TypeVar("F", bound=Callable[..., Any])


class ApiError(Exception):
    """An error to return to the client as a gRPC status with details."""

    def __init__(self, code: grpc.StatusCode, message: str, details: Iterable[Message] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = list(details)

    def status_details(self) -> bytes:
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        for d in self.details:
            packed = any_pb2.Any()
            packed.Pack(d)
            status.details.append(packed)
        return status.SerializeToString()


def invalid_argument(violations: list[tuple[str, str]]) -> ApiError:
    """INVALID_ARGUMENT with a google.rpc.BadRequest naming each bad field."""
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in violations
        ]
    )
    summary = "; ".join(f"{f}: {d}" for f, d in violations)
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid request: {summary}", [bad])


def not_found(kind: str, ident: str) -> ApiError:
    info = error_details_pb2.ResourceInfo(resource_type=kind, resource_name=ident, description="not found")
    return ApiError(grpc.StatusCode.NOT_FOUND, f"{kind} {ident!r} not found", [info])


def failed_precondition(message: str, violations: list[tuple[str, str, str]] = ()) -> ApiError:  # type: ignore[assignment]
    pf = error_details_pb2.PreconditionFailure(
        violations=[
            error_details_pb2.PreconditionFailure.Violation(type=t, subject=s, description=d)
            for t, s, d in violations
        ]
    )
    return ApiError(grpc.StatusCode.FAILED_PRECONDITION, message, [pf] if violations else [])


def quota_exceeded(message: str, violations: list[tuple[str, str]]) -> ApiError:
    qf = error_details_pb2.QuotaFailure(
        violations=[error_details_pb2.QuotaFailure.Violation(subject=s, description=d) for s, d in violations]
    )
    return ApiError(grpc.StatusCode.RESOURCE_EXHAUSTED, message, [qf])


async def abort(context: grpc.aio.ServicerContext, err: ApiError) -> None:
    await context.abort(
        err.code, err.message, trailing_metadata=(("grpc-status-details-bin", err.status_details()),)
    )


def is_abort(exc: BaseException) -> bool:
    # context.abort() raises a private exception type; let it through untouched.
    return type(exc).__name__ in {"AbortError", "_AbortError", "BaseError"} or isinstance(exc, grpc.RpcError)


async def _fail(context: grpc.aio.ServicerContext, exc: Exception, fn: Callable[..., Any]) -> None:
    """Turn an exception escaping a servicer method into a status; re-raise aborts."""
    if isinstance(exc, ApiError):
        await abort(context, exc)
    if is_abort(exc):
        raise exc
    await abort(context, internal_error(exc, REQUEST_ID.get(""), fn.__qualname__))


def internal_error(exc: BaseException, request_id: str = "", where: str = "") -> ApiError:
    """INTERNAL naming a request id; the traceback goes to the log under that id, never to the client."""
    rid = request_id or f"req-{uuid.uuid4()}"
    log.error("request %s failed%s", rid, f" in {where}" if where else "", exc_info=exc)
    return ApiError(grpc.StatusCode.INTERNAL, f"internal error (request id {rid})")


def guarded(fn: F) -> F:
    """Wrap a servicer method: ApiError → its status; anything unexpected → INTERNAL, logged."""
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def gen_wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                async for item in fn(self, request, context):
                    yield item
            except Exception as exc:
                await _fail(context, exc, fn)

        return gen_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await fn(self, request, context)
        except Exception as exc:
            await _fail(context, exc, fn)

    return wrapper  # type: ignore[return-value]


def unpack_details(exc: grpc.aio.AioRpcError) -> list[Any]:
    """Client side: the rich details of a failed call, unpacked where drover knows the type."""
    from drover.v1 import types_pb2

    raw = dict(exc.trailing_metadata() or ()).get("grpc-status-details-bin")
    if not raw:
        return []
    status = status_pb2.Status.FromString(raw)
    out: list[Any] = []
    for packed in status.details:
        for cls in (
            error_details_pb2.BadRequest,
            error_details_pb2.ResourceInfo,
            error_details_pb2.PreconditionFailure,
            error_details_pb2.QuotaFailure,
            types_pb2.Explanation,
        ):
            if packed.Is(cls.DESCRIPTOR):
                msg = cls()
                packed.Unpack(msg)
                out.append(msg)
                break
    return out
