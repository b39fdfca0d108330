"""The compute's periodic power-state sync (Nova's _sync_power_states) on the fake driver."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from drover.agent.driver import GuestSpec, ImageInfo, PowerState
from drover.agent.fake import FakeDriver
from drover.services.compute.manager import ComputeManager
from drover.v1 import compute_pb2, types_pb2


class CapturedCasts:
    def __init__(self) -> None:
        self.updates: list[Any] = []

    def cast(self, **payload: Any) -> int:
        """Each step of a report, with the report's instance and host."""
        report = payload["instance_update"]
        for step in report.steps:
            self.updates.append(SimpleNamespace(instance_id=report.instance_id, host=report.host, step=step))
        return len(self.updates)


def _manager(driver: FakeDriver | None = None) -> tuple[ComputeManager, FakeDriver, CapturedCasts]:
    driver, casts = driver or FakeDriver(hosts=1), CapturedCasts()
    mgr = ComputeManager(driver, casts, None, advertise="127.0.0.1:1", report_defaults={},  # type: ignore[arg-type]
                         sync_power_state_interval=60.0)
    return mgr, driver, casts


def _cast(iid: str) -> compute_pb2.BuildAndRunInstanceCast:
    return compute_pb2.BuildAndRunInstanceCast(
        instance=compute_pb2.InstanceSpec(id=iid, name=iid, flavor=types_pb2.Flavor(vcpus=1, memory_mb=64),
                                          image=types_pb2.Image(id="img", path="/dev/null", disk_format="raw")),
        host="fake-host-00001")


async def test_a_state_change_whose_event_never_came_is_reported_once() -> None:
    mgr, driver, casts = _manager()
    await mgr.build_and_run_instance(_cast("i-1"))
    await asyncio.sleep(0)  # the report leaves on the next turn of the loop
    assert casts.updates[-1].step.vm_state == types_pb2.VM_STATE_ACTIVE
    assert mgr.sync_power_states() == 0  # reported RUNNING, is RUNNING
    driver.guests["i-1"].power_state = PowerState.SHUTDOWN  # stopped, and no lifecycle event
    before = len(casts.updates)
    assert mgr.sync_power_states() == 1
    await asyncio.sleep(0)
    update = casts.updates[-1]
    assert len(casts.updates) == before + 1
    assert update.instance_id == "i-1" and update.host == "fake-host-00001"
    assert update.step.power_state == types_pb2.POWER_STATE_SHUTDOWN
    assert update.step.vm_state == types_pb2.VM_STATE_STOPPED
    assert update.step.notification.event_type == "instance.power_update"
    assert mgr.sync_power_states() == 0  # reported now: not again


async def test_after_an_agent_restart_every_guest_is_reported_once() -> None:
    driver = FakeDriver(hosts=1)
    guest = GuestSpec(instance_id="i-2", name="i-2", host="fake-host-00001", vcpus=1, memory_mb=64, root_gb=0,
                      image=ImageInfo(id="img", path="/dev/null", disk_format="raw"))
    await driver.spawn(guest)  # running before this agent (re)started: never reported by it
    mgr, _, casts = _manager(driver)
    assert mgr.sync_power_states() == 1
    await asyncio.sleep(0)
    assert casts.updates[-1].step.power_state == types_pb2.POWER_STATE_RUNNING
    assert mgr.sync_power_states() == 0
