"""Group commit: concurrent pieces of database work share one transaction.

Each caller hands over a function of a Session and awaits its result. Every
turn of the event loop the committer takes all waiting functions, runs them in
order in one transaction and commits once (rows they defer with ``insert_later`` go in
one statement per table just before the commit); the callbacks they queued with
``after_commit`` (publishing to watchers) run only after that commit. If one
function fails, the batch is rolled back and each function is retried alone,
so one bad update cannot sink the others. Optionally the transactions run in a
worker thread (the functions must then touch only their session and their own
state; callbacks and results are delivered back on the event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session, sessionmaker

from services.common import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")


class GroupCommit:
    def __init__(self, sessions: sessionmaker[Session], max_batch: int = 64,
                 on_rollback: Callable[[], None] | None = None, threaded: bool = False, name: str = "") -> None:
        self._sessions = sessions
        self._name = name  # labels the transaction metrics; unnamed committers are not measured
        # In a worker thread, a transaction waiting for SQLite's write lock (held by another
        # process) does not stall this process's event loop; meanwhile the next batch grows.
        self._threaded = threaded
        # Called after a failed batch: callers that cache what a transaction wrote forget it.
        self._on_rollback = on_rollback
        self._max_batch = max_batch
        self._pending: list[tuple[Callable[[Session], Any], asyncio.Future[Any]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._after: list[Callable[[], None]] = []
        self._deferred: dict[Table, list[dict[str, Any]]] = {}
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

    def insert_later(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert ``rows`` at the end of the current transaction, with every other function's rows
        for ``table`` in one statement (tables in the order first named, so parents come first)."""
        self._deferred.setdefault(table, []).extend(rows)

    def flush_inserts(self, s: Session) -> None:
        """Write the rows deferred so far now (before a read that must see them)."""
        deferred, self._deferred = self._deferred, {}
        if deferred:
            c = s.connection()
            for table, rows in deferred.items():
                c.execute(insert(table), rows)

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
                if self._threaded:
                    outcomes = await asyncio.to_thread(self._execute, batch)
                else:
                    outcomes = self._execute(batch)
                self._settle(batch, outcomes)

    def _execute(self, batch: list[tuple[Callable[[Session], Any], asyncio.Future[Any]]]) -> list[_Outcome]:
        """Run the batch in one transaction; if it fails, each function alone."""
        self.batches += 1
        self.ops += len(batch)
        results: list[Any] = []
        self._after = []
        self._deferred = {}
        try:
            started = time.perf_counter()
            with self._sessions.begin() as s:
                if self._name:
                    s.connection()  # BEGIN (IMMEDIATE on SQLite): this is where the write lock is waited for
                    locked = time.perf_counter()
                for fn, _ in batch:
                    results.append(fn(s))
                self.flush_inserts(s)
            if self._name:
                metrics.STORE_TXN_SECONDS.labels(self._name, "wait").observe(locked - started)
                metrics.STORE_TXN_SECONDS.labels(self._name, "held").observe(time.perf_counter() - locked)
                metrics.STORE_TXN_BATCH.labels(self._name).observe(len(batch))
        except Exception as exc:
            self._after = []
            self._deferred = {}
            if self._on_rollback is not None:
                self._on_rollback()
            if len(batch) == 1:
                return [_Outcome(error=exc)]
            log.debug("group commit of %d failed; retrying one by one", len(batch), exc_info=True)
            return [outcome for item in batch for outcome in self._execute([item])]
        after, self._after = self._after, []
        return [_Outcome(value=r, after=after if i == 0 else []) for i, r in enumerate(results)]

    @staticmethod
    def _settle(batch: list[tuple[Callable[[Session], Any], asyncio.Future[Any]]],
                outcomes: list[_Outcome]) -> None:
        for outcome in outcomes:
            for cb in outcome.after:
                try:
                    cb()
                except Exception:
                    log.exception("after-commit callback failed")
        for (_, fut), outcome in zip(batch, outcomes, strict=True):
            if fut.done():
                continue
            if outcome.error is not None:
                fut.set_exception(outcome.error)
            else:
                fut.set_result(outcome.value)


@dataclass
class _Outcome:
    value: Any = None
    error: BaseException | None = None
    # after-commit callbacks of the transaction this function was part of (on its first function)
    after: list[Callable[[], None]] = field(default_factory=list)
