"""Progress reports: steps taken together leave together; the states a run of steps publishes."""

from __future__ import annotations

import asyncio
import datetime as dt
from types import SimpleNamespace

from drover.services.common import states
from drover.services.compute.progress import ProgressReporter
from drover.services.conductor.steps import fields_of, intermediate_states, is_plain
from drover.v1 import conductor_pb2, types_pb2

NOW = dt.datetime(2026, 12, 1, 7, 0, 0)


def _u(**kw: object) -> conductor_pb2.InstanceStep:
    return conductor_pb2.InstanceStep(**kw)  # type: ignore[arg-type]


def test_failed_builds_and_finished_deletes_are_not_plain() -> None:
    assert is_plain(_u(task_state=types_pb2.TASK_STATE_SPAWNING))
    assert not is_plain(_u(build_failed=True))
    assert not is_plain(_u(terminated=True))


async def test_steps_taken_together_leave_in_one_report_in_order() -> None:
    sent: list[conductor_pb2.InstanceUpdateCast] = []

    class Conductor:
        def cast(self, **payload: object) -> int:
            sent.append(payload["instance_update"])  # type: ignore[arg-type]
            return len(sent)

    progress = ProgressReporter(Conductor())
    progress.step("i-1", "h1", task_state=types_pb2.TASK_STATE_NETWORKING)
    progress.step("i-2", "h1", task_state=types_pb2.TASK_STATE_NETWORKING)
    progress.step("i-1", "h1", task_state=types_pb2.TASK_STATE_SPAWNING)
    assert sent == []  # nothing leaves before the agent waits on something
    await asyncio.sleep(0)
    assert [(r.instance_id, [st.task_state for st in r.steps]) for r in sent] == [
        ("i-1", [types_pb2.TASK_STATE_NETWORKING, types_pb2.TASK_STATE_SPAWNING]),
        ("i-2", [types_pb2.TASK_STATE_NETWORKING])]
    progress.step("i-1", "h1", vm_state=types_pb2.VM_STATE_ACTIVE)
    await asyncio.sleep(0)
    assert len(sent) == 3 and [st.vm_state for st in sent[2].steps] == [types_pb2.VM_STATE_ACTIVE]


def test_fields_of_a_step() -> None:
    u = _u(vm_state=types_pb2.VM_STATE_ACTIVE, task_state=types_pb2.TASK_STATE_UNSPECIFIED, power_state=1,
           fault=types_pb2.Fault(message="slow disk"))
    u.launched_at.FromDatetime(NOW)
    got = fields_of(u, NOW)
    assert got["vm_state"] == states.ACTIVE and got["task_state"] is None and got["power_state"] == 1
    assert got["launched_at"] == NOW and got["fault_code"] == 500 and got["fault_message"] == "slow disk"


def test_each_step_of_a_run_is_its_own_revision() -> None:
    final = SimpleNamespace(id="i-1", revision=7, vm_state=states.ACTIVE, task_state=None, power_state=1,
                            launched_at=NOW, name="web")
    steps = [{"task_state": states.NETWORKING}, {"task_state": states.BLOCK_DEVICE_MAPPING},
             {"task_state": states.SPAWNING},
             {"vm_state": states.ACTIVE, "task_state": None, "power_state": 1, "launched_at": NOW}]
    before = {"vm_state": states.BUILDING, "power_state": 0, "launched_at": None}
    views = intermediate_states(final, before, steps)
    assert [v.revision for v in views] == [4, 5, 6, 7]
    assert [v.task_state for v in views] == [states.NETWORKING, states.BLOCK_DEVICE_MAPPING, states.SPAWNING, None]
    assert [v.vm_state for v in views] == [states.BUILDING] * 3 + [states.ACTIVE]
    assert [v.power_state for v in views] == [0, 0, 0, 1]
    assert views[0].launched_at is None and views[-1].launched_at == NOW
    assert all(v.name == "web" for v in views)  # everything else is the final row's


def test_a_running_delete_keeps_its_states_in_every_step() -> None:
    final = SimpleNamespace(revision=3, vm_state=states.BUILDING, task_state=states.DELETING, power_state=1)
    views = intermediate_states(final, {"power_state": 0},
                                [{"task_state": states.SPAWNING}, {"vm_state": states.ACTIVE, "power_state": 1}])
    assert [(v.vm_state, v.task_state, v.power_state) for v in views] == [
        (states.BUILDING, states.DELETING, 0), (states.BUILDING, states.DELETING, 1)]
