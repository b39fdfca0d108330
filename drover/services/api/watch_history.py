"""Recent instance changes, so a WatchServer opened late can replay what it missed.

A client learns a server's revision from CreateServer (or GetServer) and opens
WatchServer with ``since_revision``; by then the build may have moved on. The
API keeps every change it relays for ``retention`` seconds (and no more than
``max_changes`` in all), and a watch replays those after its revision when the
kept history reaches back to it: no step and no notification is lost. When it
does not (too old, or the conductor stream broke meanwhile), the watch starts
from the current state instead, as a watch without ``since_revision`` does.
"""

from __future__ import annotations

import time
from collections import deque

from drover.v1 import conductor_pb2


class WatchHistory:
    def __init__(self, retention: float = 60.0, max_changes: int = 200_000) -> None:
        self.retention = retention
        self.max_changes = max_changes
        self._by_id: dict[str, deque[conductor_pb2.InstanceChange]] = {}
        self._order: deque[tuple[float, str]] = deque()  # (arrival, instance id), one per kept change

    def __len__(self) -> int:
        return len(self._order)

    def add(self, change: conductor_pb2.InstanceChange, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        iid = change.server.id
        kept = self._by_id.get(iid)
        if kept is None:
            kept = self._by_id[iid] = deque()
        kept.append(change)
        self._order.append((now, iid))
        self._trim(now)

    def clear(self) -> None:
        """Forget everything (the stream of changes had a gap)."""
        self._by_id.clear()
        self._order.clear()

    def _trim(self, now: float) -> None:
        cutoff = now - self.retention
        while self._order and (len(self._order) > self.max_changes or self._order[0][0] < cutoff):
            _, iid = self._order.popleft()
            kept = self._by_id[iid]
            kept.popleft()
            if not kept:
                del self._by_id[iid]

    def between(self, instance_id: str, after: int, through: int
                ) -> tuple[list[conductor_pb2.InstanceChange], bool] | None:
        """The kept changes with ``after`` < revision <= ``through``, in order, and whether they
        reach ``through``: the newest may still be on their way (the store is written before the
        change is relayed). None when the kept ones do not follow on from ``after`` (a gap)."""
        if through <= after:
            return [], True
        kept = [c for c in self._by_id.get(instance_id, ()) if after < c.server.revision <= through]
        expected = after + 1
        for c in kept:  # consecutive revisions (a notification may repeat the revision before it)
            if c.server.revision not in (expected - 1, expected):
                return None
            expected = c.server.revision + 1
        return kept, expected == through + 1
