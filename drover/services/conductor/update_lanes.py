"""Compute updates of one instance that arrive together are written together.

A compute reports every step of a build (NETWORKING, BLOCK_DEVICE_MAPPING,
SPAWNING, ACTIVE) as its own cast, and under load they reach the conductor in
one stream message. Written one by one, each costs an UPDATE … RETURNING and a
group-commit turn. A *lane* collects the updates of one instance that arrive
before its write starts; the write applies them in order as one UPDATE that
advances the revision once per update, records every event, and publishes
every intermediate state, so watchers still see each step with its own
revision. Only plain state updates ride in lanes; a failed build or a finished
delete closes the instance's lane so nothing overtakes it.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

from drover.services.common import states
from drover.v1 import conductor_pb2


@dataclass
class Lane:
    instance_id: str
    updates: list[conductor_pb2.InstanceUpdateCast]
    done: asyncio.Future[None]  # resolved when the write committed: the riders may ack then
    started: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def join(self, u: conductor_pb2.InstanceUpdateCast) -> bool:
        """Ride along unless the write has begun (it runs in the group-commit thread)."""
        with self.lock:
            if self.started:
                return False
            self.updates.append(u)
            return True

    def take(self) -> list[conductor_pb2.InstanceUpdateCast]:
        """What the write applies: everything joined so far; later updates need a new lane."""
        with self.lock:
            self.started = True
            return list(self.updates)


def rides_in_lane(u: conductor_pb2.InstanceUpdateCast) -> bool:
    return not (u.terminated or u.build_failed)


def fields_of(u: conductor_pb2.InstanceUpdateCast, now: Any) -> dict[str, Any]:
    """Column -> value that one update sets (the UPDATABLE columns only)."""
    out: dict[str, Any] = {}
    if u.HasField("vm_state"):
        out["vm_state"] = states.VM_STATE_FROM_PB[u.vm_state]
    if u.HasField("task_state"):
        out["task_state"] = states.TASK_STATE_FROM_PB[u.task_state]
    if u.HasField("power_state"):
        out["power_state"] = int(u.power_state)
    if u.HasField("launched_at"):
        out["launched_at"] = u.launched_at.ToDatetime()
    if u.HasField("fault") and u.fault.message:
        out.update(fault_code=u.fault.code or 500, fault_message=u.fault.message,
                   fault_details=u.fault.details, fault_at=now)
    return out


class RowView:
    """A RETURNING row with some columns replaced: an intermediate state of a merged write."""

    def __init__(self, row: Any, overrides: dict[str, Any]) -> None:
        self._row = row
        self._overrides = overrides

    def __getattr__(self, name: str) -> Any:
        overrides = self.__dict__["_overrides"]
        if name in overrides:
            return overrides[name]
        return getattr(self.__dict__["_row"], name)


def intermediate_states(final: Any, before: dict[str, Any], steps: list[dict[str, Any]]) -> list[RowView]:
    """The instance after each of ``steps`` (column changes, in order), given the final row.

    ``before`` holds the values, prior to the first step, of the columns that a later step
    sets but an earlier one does not. While a delete runs, vm_state and task_state keep
    their values (as the UPDATE's CASE does).
    """
    frozen = {"vm_state", "task_state"} if final.task_state == states.DELETING else set()
    first_revision = final.revision - len(steps) + 1
    state = dict(before)
    out = []
    for k, step in enumerate(steps):
        state.update({c: v for c, v in step.items() if c not in frozen})
        out.append(RowView(final, {**{c: v for c, v in state.items() if c not in frozen},
                                   "revision": first_revision + k}))
    return out
