"""The conductor's calls to SelectDestinations, batched while one is in flight.

Builds arrive as casts, many at once under load. Each still waits for its own
answer (select is a call, as in Nova), but the requests that queue up while one
``SelectDestinationsBatch`` call is in flight travel together in the next one:
no wait is added when the scheduler is idle, and under load one round trip
serves many builds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import grpc

from drover.services.common.errors import unpack_details
from drover.v1 import scheduler_pb2, scheduler_pb2_grpc, types_pb2

log = logging.getLogger(__name__)


class SelectError(Exception):
    """The scheduler placed nothing for this request (or could not be asked)."""

    def __init__(self, code: grpc.StatusCode, message: str, explanation: types_pb2.Explanation | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.explanation = explanation


_CODES = {c.value[0]: c for c in grpc.StatusCode}


def _error_of(result: scheduler_pb2.SelectDestinationsResult) -> SelectError:
    code = _CODES.get(result.code, grpc.StatusCode.UNKNOWN)
    return SelectError(code, result.message, result.explanation if result.HasField("explanation") else None)


def _fail(batch: list[tuple[Any, asyncio.Future[Any]]], err: SelectError) -> None:
    for _, fut in batch:
        if not fut.done():  # a caller that gave up (cancelled) is skipped
            fut.set_exception(err)


def _error_of_call(exc: grpc.aio.AioRpcError) -> SelectError:
    expl = next((d for d in unpack_details(exc) if isinstance(d, types_pb2.Explanation)), None)
    return SelectError(exc.code(), exc.details() or exc.code().name, expl)


class SelectBatcher:
    def __init__(self, stub: scheduler_pb2_grpc.SchedulerServiceStub, timeout: float, max_batch: int = 64) -> None:
        self._stub = stub
        self._timeout = timeout
        self._max_batch = max_batch
        self._pending: list[tuple[scheduler_pb2.SelectDestinationsRequest,
                                  asyncio.Future[scheduler_pb2.SelectDestinationsResponse]]] = []
        self._runner: asyncio.Task[None] | None = None
        self.calls = 0
        self.requests = 0

    async def select(self, spec: scheduler_pb2.RequestSpec) -> scheduler_pb2.SelectDestinationsResponse:
        """Hosts for ``spec``, claimed; SelectError when there are none or the scheduler failed."""
        fut: asyncio.Future[scheduler_pb2.SelectDestinationsResponse] = asyncio.get_running_loop().create_future()
        self._pending.append((scheduler_pb2.SelectDestinationsRequest(spec=spec), fut))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run(), name="select-batcher")
        return await fut

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        _fail(self._pending, SelectError(grpc.StatusCode.UNAVAILABLE, "conductor is stopping"))
        self._pending = []

    async def _run(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch:]
            try:
                resp = await self._call([req for req, _ in batch])
            except SelectError as err:
                _fail(batch, err)
                continue
            except BaseException as exc:  # cancelled or a bug: nobody may wait forever
                _fail(batch, SelectError(grpc.StatusCode.INTERNAL, f"select failed: {exc!r}"))
                raise
            if len(resp.results) != len(batch):
                _fail(batch, SelectError(grpc.StatusCode.INTERNAL,
                                         f"scheduler answered {len(resp.results)} results for {len(batch)} requests"))
                continue
            for (_, fut), result in zip(batch, resp.results, strict=True):
                if fut.done():  # its caller gave up (cancelled)
                    continue
                if result.code == grpc.StatusCode.OK.value[0]:
                    fut.set_result(scheduler_pb2.SelectDestinationsResponse(
                        selections=result.selections,
                        explanation=result.explanation if result.HasField("explanation") else None))
                else:
                    fut.set_exception(_error_of(result))

    async def _call(self, requests: list[scheduler_pb2.SelectDestinationsRequest]
                    ) -> scheduler_pb2.SelectDestinationsBatchResponse:
        """One batch call with a deadline; retried while the scheduler is unreachable."""
        self.calls += 1
        self.requests += len(requests)
        delay, waited = 0.2, 0.0
        while True:
            try:
                return await self._stub.SelectDestinationsBatch(
                    scheduler_pb2.SelectDestinationsBatchRequest(requests=requests), timeout=self._timeout)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or waited >= self._timeout * 3:
                    raise _error_of_call(exc) from None
                log.debug("scheduler unavailable; retrying select in %.1f s", delay)
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, 2.0)
