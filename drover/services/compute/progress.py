"""Progress reports: what a compute did to an instance, one cast per report.

A build walks NETWORKING → BLOCK_DEVICE_MAPPING → SPAWNING → ACTIVE; steps that
happen without the agent waiting on anything in between (all of them, with the
fake driver) leave in one ``instance_update`` cast carrying the ordered steps.
The conductor persists and publishes each step with its own revision, in one
statement, so nothing downstream has to gather separate casts back together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Protocol

from drover.v1 import conductor_pb2


class Caster(Protocol):
    def cast(self, **payload: Any) -> int: ...


class ProgressReporter:
    """Collects steps per (instance, host) and casts them on the next turn of the event loop."""

    def __init__(self, conductor: Caster) -> None:
        self._conductor = conductor
        self._pending: dict[tuple[str, str], conductor_pb2.InstanceUpdateCast] = {}
        self._flush_scheduled = False

    def step(self, instance_id: str, host: str, *, events: Iterable[conductor_pb2.ActionEventUpdate] = (),
             **fields: Any) -> None:
        """Record one step (InstanceStep fields); it leaves with the steps taken beside it."""
        key = (instance_id, host)
        report = self._pending.get(key)
        if report is None:
            report = self._pending[key] = conductor_pb2.InstanceUpdateCast(instance_id=instance_id, host=host)
        report.steps.add(**fields).events.extend(events)
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): report at once
            self.flush()
            return
        self._flush_scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Cast every pending report now (in the order their first steps were taken)."""
        self._flush_scheduled = False
        pending, self._pending = self._pending, {}
        for report in pending.values():
            self._conductor.cast(instance_update=report)
