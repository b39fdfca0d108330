"""A compute agent that restarts over a driver that kept its guests (libvirt's survive) counts them."""

from __future__ import annotations

from typing import Any

from drover.agent.fake import FakeDriver
from drover.services.compute.manager import ComputeManager
from tests.unit.test_power_sync import _cast


class Casts:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def cast(self, **payload: Any) -> int:
        self.sent.append(payload)
        return len(self.sent)


def _agent(driver: FakeDriver, casts: Casts) -> ComputeManager:
    return ComputeManager(driver, casts, None, advertise="127.0.0.1:1", report_defaults={})  # type: ignore[arg-type]


async def test_a_restarted_agent_adopts_the_guests_its_driver_has_and_reports_them() -> None:
    driver = FakeDriver(hosts=2)
    first = _agent(driver, Casts())
    await first.build_and_run_instance(_cast("i-1"))
    await first.build_and_run_instance(_cast("i-2"))
    casts = Casts()
    again = _agent(driver, casts)  # the agent restarted; the hypervisor kept its guests
    assert again.adopt_guests() == 2
    counts = {r.host: r.num_instances for r in again.host_reports()}
    assert counts == {"fake-host-00001": 2, "fake-host-00002": 0}
    again.send_inventory()
    inventory = casts.sent[-1]["guest_inventory"]
    assert sorted(inventory.instance_ids) == ["i-1", "i-2"]
    assert sorted(inventory.hosts) == ["fake-host-00001", "fake-host-00002"] and inventory.taken_at.seconds
