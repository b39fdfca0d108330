"""One subscription to the conductor's instance changes, fanned out to WatchServer streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

import grpc

from drover.services.api.watch_history import WatchHistory
from drover.v1 import conductor_pb2, conductor_pb2_grpc

log = logging.getLogger(__name__)

Event = conductor_pb2.InstanceChange | None  # None: resync from the store


class Fanout:
    def __init__(self, stub: conductor_pb2_grpc.ConductorServiceStub, history: WatchHistory | None = None) -> None:
        self._stub = stub
        self.history = history or WatchHistory()
        self._subs: dict[str, set[asyncio.Queue[Event]]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def subscribe(self, instance_id: str) -> asyncio.Queue[Event]:
        q: asyncio.Queue[Event] = asyncio.Queue()
        self._subs[instance_id].add(q)
        return q

    def unsubscribe(self, instance_id: str, q: asyncio.Queue[Event]) -> None:
        subs = self._subs.get(instance_id)
        if subs is not None:
            subs.discard(q)
            if not subs:
                del self._subs[instance_id]

    def _resync_all(self) -> None:
        for subs in self._subs.values():
            for q in subs:
                q.put_nowait(None)

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                call = self._stub.WatchInstances(conductor_pb2.WatchInstancesRequest())
                self.connected.set()
                self._resync_all()  # anything may have happened while we were away
                delay = 0.1
                async for msg in call:
                    for change in msg.changes:
                        self.history.add(change)
                        for q in self._subs.get(change.server.id, ()):
                            q.put_nowait(change)
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                log.debug("instance watch broke: %s", exc.code())
            except Exception:
                log.exception("instance watch failed")
            self.connected.clear()
            self.history.clear()  # what happens until we are back is not in it
            self._resync_all()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
