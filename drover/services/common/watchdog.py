"""A watchdog over a service's background tasks.

A service's loops (group commit, cast senders, sweeps, reports) run as asyncio tasks; one that
dies with an exception would otherwise leave the process answering health checks as SERVING
while doing nothing. The watchdog looks at every watched task once a second: a task that ended
(not cancelled by a stop) is logged as an error and counted, and the service's health turns
NOT_SERVING; a task with a ``restart`` is started again after a short pause, and health returns
to SERVING once nothing is dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from drover.services.common import metrics

log = logging.getLogger(__name__)


@dataclass
class _Watched:
    name: str
    task_of: Callable[[], asyncio.Task[None] | None]
    restart: Callable[[], None] | None
    dead_since: float | None = None


class Watchdog:
    def __init__(self, set_serving: Callable[[bool], Awaitable[None]], service: str,
                 interval: float = 1.0, restart_after: float = 1.0) -> None:
        self._set_serving = set_serving
        self._service = service
        self._interval = interval
        self._restart_after = restart_after
        self._watched: list[_Watched] = []
        self._task: asyncio.Task[None] | None = None
        self._healthy = True
        self.deaths = 0

    def watch(self, name: str, task_of: Callable[[], asyncio.Task[None] | None],
              restart: Callable[[], None] | None = None) -> None:
        """Watch the task ``task_of()`` returns (None: not started, fine); ``restart`` starts it anew."""
        self._watched.append(_Watched(name, task_of, restart))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="watchdog")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.check()
            except Exception:  # the watchdog itself must not die of what it watches
                log.exception("watchdog check failed")

    async def check(self) -> bool:
        """Look at every task once; returns whether all are alive."""
        now = asyncio.get_running_loop().time()
        for w in self._watched:
            task = w.task_of()
            if w.dead_since is None:
                if task is None or not task.done() or task.cancelled():
                    continue
                w.dead_since = now
                self.deaths += 1
                metrics.TASK_DEATHS.labels(self._service, w.name).inc()
                exc = task.exception()
                log.error("%s: background task %s ended%s; health is NOT_SERVING until it runs again",
                          self._service, w.name, "" if exc is None else f" with {exc!r}",
                          exc_info=exc)
            elif w.restart is not None and now - w.dead_since >= self._restart_after:
                log.warning("%s: restarting background task %s", self._service, w.name)
                w.restart()
                task = w.task_of()
                if task is not None and not task.done():
                    w.dead_since = None
        healthy = all(w.dead_since is None for w in self._watched)
        if healthy != self._healthy:
            self._healthy = healthy
            await self._set_serving(healthy)
        return healthy
