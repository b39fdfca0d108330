"""The conductor's SelectBatcher against a stand-in scheduler stub: batching, per-request errors, retries."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from drover.services.conductor.selects import SelectBatcher, SelectError
from drover.v1 import scheduler_pb2, types_pb2

OK = grpc.StatusCode.OK.value[0]
NO_HOST = grpc.StatusCode.FAILED_PRECONDITION.value[0]


class _Unavailable(grpc.aio.AioRpcError):
    def __init__(self) -> None:
        super().__init__(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down")


class StubScheduler:
    """Answers each request like the scheduler would: hosts for small ones, no valid host for big ones."""

    def __init__(self, unavailable: int = 0) -> None:
        self.batches: list[list[str]] = []
        self.unavailable = unavailable
        self.release = asyncio.Event()
        self.release.set()

    async def SelectDestinationsBatch(self, request: Any, timeout: float) -> Any:
        if self.unavailable:
            self.unavailable -= 1
            raise _Unavailable()
        self.batches.append([r.spec.instance_ids[0] for r in request.requests])
        await self.release.wait()
        out = scheduler_pb2.SelectDestinationsBatchResponse()
        for r in request.requests:
            res = out.results.add()
            if r.spec.memory_mb > 1000:
                res.code, res.message = NO_HOST, "no valid host: 2 hosts; RamFilter rejected 2"
                res.explanation.CopyFrom(types_pb2.Explanation(hosts_total=2, summary=res.message))
            else:
                res.selections.add(instance_id=r.spec.instance_ids[0], host="h1")
        return out


def _spec(name: str, memory_mb: int = 64) -> scheduler_pb2.RequestSpec:
    return scheduler_pb2.RequestSpec(instance_ids=[name], vcpus=1, memory_mb=memory_mb)


async def test_requests_that_arrive_during_a_call_share_the_next_one() -> None:
    stub = StubScheduler()
    stub.release.clear()  # hold the first call in flight
    batcher = SelectBatcher(stub, timeout=5)  # type: ignore[arg-type]
    first = asyncio.create_task(batcher.select(_spec("a")))
    await asyncio.sleep(0.01)
    rest = [asyncio.create_task(batcher.select(_spec(n))) for n in ("b", "c", "d")]
    await asyncio.sleep(0.01)
    stub.release.set()
    results = await asyncio.gather(first, *rest)
    assert [r.selections[0].instance_id for r in results] == ["a", "b", "c", "d"]
    assert stub.batches == [["a"], ["b", "c", "d"]]
    assert (batcher.calls, batcher.requests) == (2, 4)


async def test_a_request_without_a_host_fails_alone_with_its_explanation() -> None:
    batcher = SelectBatcher(StubScheduler(), timeout=5)  # type: ignore[arg-type]
    ok, big = await asyncio.gather(batcher.select(_spec("ok")), batcher.select(_spec("big", 10_000)),
                                   return_exceptions=True)
    assert isinstance(ok, scheduler_pb2.SelectDestinationsResponse) and ok.selections[0].host == "h1"
    assert isinstance(big, SelectError)
    assert big.code == grpc.StatusCode.FAILED_PRECONDITION
    assert big.explanation is not None and big.explanation.summary.startswith("no valid host: 2 hosts")


async def test_an_unreachable_scheduler_is_retried_then_answers() -> None:
    stub = StubScheduler(unavailable=2)
    batcher = SelectBatcher(stub, timeout=5)  # type: ignore[arg-type]
    resp = await batcher.select(_spec("later"))
    assert resp.selections[0].instance_id == "later"


async def test_a_scheduler_that_stays_down_fails_every_waiting_request() -> None:
    stub = StubScheduler(unavailable=1000)
    batcher = SelectBatcher(stub, timeout=0.1)  # type: ignore[arg-type]
    with pytest.raises(SelectError) as err:
        await batcher.select(_spec("never"))
    assert err.value.code == grpc.StatusCode.UNAVAILABLE
