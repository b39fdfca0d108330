"""The steps of a compute's progress report, as columns and as the states in between.

A report (``InstanceUpdateCast``) carries the steps a compute took on one
instance since its last report, in order (a whole fake build is one report:
NETWORKING, BLOCK_DEVICE_MAPPING, SPAWNING, ACTIVE). The conductor writes a run
of plain steps as one UPDATE that advances the revision once per step, and
publishes the state after each step with its own revision, so watchers still
see every step.
"""

from __future__ import annotations

from typing import Any

from drover.services.common import states
from drover.v1 import conductor_pb2


def is_plain(step: conductor_pb2.InstanceStep) -> bool:
    """A state change that needs no decision (not a failed build, not a finished delete)."""
    return not (step.terminated or step.build_failed)


def fields_of(u: conductor_pb2.InstanceStep, now: Any) -> dict[str, Any]:
    """Column -> value that one step sets (the UPDATABLE columns only)."""
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
