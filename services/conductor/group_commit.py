"""Group commit: concurrent pieces of database work share one transaction.

Each caller hands over a function of a Session and awaits its result. Every
turn of the event loop the committer takes all waiting functions, runs them in
order in one transaction and commits once; the callbacks they queued with
``after_commit`` (publishing to watchers) run only after that commit. If one
function fails, the batch is rolled back and each function is retried alone,
so one bad update cannot sink the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
T = TypeVar("T")


class GroupCommit:
    def __init__(self, sessions: sessionmaker[Session], max_batch: int = 64) -> None:
        self._sessions = sessions
        self._max_batch = max_batch
        self._pending: list[tuple[Callable[[Session], Any], asyncio.Future[Any]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._after: list[Callable[[], None]] = []
        self.batches = 0
        self.ops = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="group-commit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self, fn: Callable[[Session], T]) -> T:
        self.start()
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, fut))
        self._wakeup.set()
        return await fut

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the current transaction has committed (dropped on rollback)."""
        self._after.append(callback)

    async def _loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(0)  # let work queued in this loop turn join the batch
            while self._pending:
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
                self._apply(batch)

    def _apply(self, batch: list[tuple[Callable[[Session], Any], asyncio.Future[Any]]]) -> None:
        self.batches += 1
        self.ops += len(batch)
        results: list[Any] = []
        self._after = []
        try:
            with self._sessions.begin() as s:
                for fn, _ in batch:
                    results.append(fn(s))
        except Exception:
            self._after = []
            if len(batch) == 1:
                fn, fut = batch[0]
                self._settle_error(fut)
                return
            log.debug("group commit of %d failed; retrying one by one", len(batch), exc_info=True)
            for item in batch:
                self._apply([item])
            return
        after, self._after = self._after, []
        for cb in after:
            try:
                cb()
            except Exception:
                log.exception("after-commit callback failed")
        for (_, fut), res in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(res)

    @staticmethod
    def _settle_error(fut: asyncio.Future[Any]) -> None:
        import sys

        exc = sys.exc_info()[1]
        if not fut.done():
            fut.set_exception(exc if exc is not None else RuntimeError("transaction failed"))
