"""Group commit: concurrent pieces of database work share one transaction.

Each caller hands over a function of a Session and awaits its result. Every
turn of the event loop the committer takes all waiting functions, runs them in
order in one transaction and commits once (rows they defer with ``insert_later`` go in
one statement per table just before the commit); the callbacks they queued with
``after_commit`` (publishing to watchers) run only after that commit. If one
function fails, the batch is rolled back and each function is retried alone,
so one bad update cannot sink the others. Optionally (``threaded``) waiting is
kept off the event loop: on SQLite the wait for the write lock runs in a worker
thread and the batch then runs on the loop; elsewhere the whole transaction runs
in the worker thread (the functions must then touch only their session and their
own state; callbacks and results are delivered back on the event loop).
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
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from drover.services.common import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")
# How often a batch waits the store's whole busy timeout for the write lock before it fails.
LOCK_ATTEMPTS = 3


class GroupCommit:
    def __init__(self, sessions: sessionmaker[Session], max_batch: int = 64,
                 on_rollback: Callable[[], None] | None = None, threaded: bool = False, name: str = "") -> None:
        self._sessions = sessions
        self._name = name  # labels the transaction metrics; unnamed committers are not measured
        # In a worker thread, a transaction waiting for SQLite's write lock (held by another
        # process) does not stall this process's event loop; meanwhile the next batch grows.
        self._threaded = threaded
        # SQLite has one writer: BEGIN IMMEDIATE waits for the database lock, and after it nothing
        # else blocks, so the batch can run on the loop. Elsewhere (PostgreSQL) any statement may
        # wait on a row lock: there the whole transaction stays in the worker thread.
        bind = sessions.kw.get("bind")
        self._single_writer = bind is not None and bind.dialect.name == "sqlite"
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

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The commit loop (for a watchdog)."""
        return self._task

    def start(self) -> None:
        """Start the commit loop, or start it again if it ended (its queue is kept)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="group-commit")
            if self._pending:
                self._wakeup.set()

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
                try:
                    outcomes = await self._execute_batch(batch)
                except Exception as exc:
                    # Whatever went wrong belongs to this batch: its waiters get the error and the
                    # loop goes on (an exception escaping here would end group commit for good).
                    log.error("group commit %s: a batch of %d failed: %r", self._name or "-", len(batch), exc)
                    metrics.GROUP_COMMIT_FAILURES.labels(self._name or "-", type(exc).__name__).inc()
                    outcomes = [_Outcome(error=exc) for _ in batch]
                except BaseException:
                    for _, fut in batch:  # stopped mid-batch: nobody may wait forever
                        if not fut.done():
                            fut.set_exception(ConnectionAbortedError("group commit stopped"))
                    raise
                self._settle(batch, outcomes)

    async def _execute_batch(self, batch: list[tuple[Callable[[Session], Any], asyncio.Future[Any]]]
                             ) -> list[_Outcome]:
        if self._threaded and self._single_writer:
            return await self._execute_when_locked(batch)
        if self._threaded:
            return await asyncio.to_thread(self._execute_alone_if_failed, batch)
        return self._execute_alone_if_failed(batch)

    async def _execute_when_locked(self, batch: list[tuple[Callable[[Session], Any], asyncio.Future[Any]]]
                                   ) -> list[_Outcome]:
        """Wait for the store's write lock in a worker thread, then run the batch here.

        Holding the lock while this thread competes for the GIL with the event loop would stretch
        every transaction (and every other writer's wait); on the loop it runs at full speed.
        A batch that fails is retried one by one in the worker thread, as before.
        """
        started = time.perf_counter()
        for attempt in range(1, LOCK_ATTEMPTS + 1):
            s = self._sessions()
            try:
                await asyncio.to_thread(s.connection)  # BEGIN (IMMEDIATE on SQLite): the wait for the lock
                break
            except OperationalError as exc:
                s.close()
                if attempt == LOCK_ATTEMPTS or "locked" not in str(exc):
                    raise
                log.warning("group commit %s: no write lock after the busy timeout (attempt %d of %d); retrying",
                            self._name or "-", attempt, LOCK_ATTEMPTS)
            except BaseException:
                s.close()
                raise
        outcomes = self._execute(batch, locked=(s, started))
        if outcomes is None:
            outcomes = await asyncio.to_thread(self._execute_alone, batch)
        return outcomes

    def _execute(self, batch: list[tuple[Callable[[Session], Any], asyncio.Future[Any]]],
                 locked: tuple[Session, float] | None = None) -> list[_Outcome] | None:
        """Run the batch in one transaction; if it fails, each function alone.

        ``locked``: a session whose transaction already holds the write lock, and when the wait
        for it began. Then a failed batch of several returns None: the caller retries them.
        """
        self.batches += 1
        self.ops += len(batch)
        results: list[Any] = []
        self._after = []
        self._deferred = {}
        s, started = locked if locked is not None else (self._sessions(), time.perf_counter())
        try:
            with s:
                if not s.in_transaction():
                    s.begin()
                s.connection()  # BEGIN (IMMEDIATE on SQLite): this is where the write lock is waited for
                got_lock = time.perf_counter()
                for fn, _ in batch:
                    results.append(fn(s))
                self.flush_inserts(s)
                s.commit()
            if self._name:
                metrics.STORE_TXN_SECONDS.labels(self._name, "wait").observe(got_lock - started)
                metrics.STORE_TXN_SECONDS.labels(self._name, "held").observe(time.perf_counter() - got_lock)
                metrics.STORE_TXN_BATCH.labels(self._name).observe(len(batch))
        except Exception as exc:
            self._after = []
            self._deferred = {}
            if self._on_rollback is not None:
                self._on_rollback()
            if len(batch) == 1:
                return [_Outcome(error=exc)]
            if locked is not None:
                return None
            return self._execute_alone(batch)
        after, self._after = self._after, []
        return [_Outcome(value=r, after=after if i == 0 else []) for i, r in enumerate(results)]

    def _execute_alone_if_failed(self, batch: list[tuple[Callable[[Session], Any], asyncio.Future[Any]]]
                                 ) -> list[_Outcome]:
        done = self._execute(batch)
        assert done is not None  # without ``locked`` it always has the outcomes
        return done

    def _execute_alone(self, batch: list[tuple[Callable[[Session], Any], asyncio.Future[Any]]]) -> list[_Outcome]:
        log.debug("group commit of %d failed; retrying one by one", len(batch))
        out = []
        for item in batch:
            outcome = self._execute([item])
            assert outcome is not None  # a batch of one always has its outcome
            out.extend(outcome)
        return out

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
