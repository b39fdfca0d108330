"""The fake driver: in-memory guests on any number of simulated hosts (Nova's fake driver).

One agent process can present thousands of hosts for load tests. Image
properties let tests steer it: ``drover_fake_fail_step`` (a spawn step name)
makes that step fail, ``drover_fake_step_seconds`` slows every step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from drover.agent.driver import ComputeDriver, DriverError, GuestSpec, HostResources, PowerState


@dataclass
class FakeGuest:
    spec: GuestSpec
    power_state: PowerState = PowerState.NOSTATE
    console: str = ""


class FakeDriver(ComputeDriver):
    name = "fake"

    def __init__(
        self,
        *,
        hosts: int = 1,
        host_prefix: str = "fake-host",
        vcpus: int = 16,
        memory_mb: int = 65536,
        disk_gb: int = 1024,
        step_seconds: float = 0.0,
        traits: Sequence[str] = (),
        cpu_info: str = "",
        supported_instances: Sequence[tuple[str, str, str]] = (("x86_64", "fake", "hvm"),),
    ) -> None:
        super().__init__()
        width = max(5, len(str(hosts)))
        self._hosts = [
            HostResources(
                host=f"{host_prefix}-{i:0{width}d}",
                vcpus=vcpus,
                memory_mb=memory_mb,
                disk_gb=disk_gb,
                hypervisor_type="fake",
                hypervisor_version=1000,
                traits=list(traits),
                cpu_info=cpu_info,
                supported_instances=list(supported_instances),
            )
            for i in range(1, hosts + 1)
        ]
        self._step_seconds = step_seconds
        self.guests: dict[str, FakeGuest] = {}

    def host_resources(self) -> list[HostResources]:
        return self._hosts

    async def _step(self, guest: GuestSpec, name: str) -> None:
        delay = float(guest.image.properties.get("drover_fake_step_seconds", self._step_seconds))
        if delay > 0:
            await asyncio.sleep(delay)
        if guest.image.properties.get("drover_fake_fail_step") == name:
            raise DriverError(f"fake failure injected at {name}")

    async def create_image(self, guest: GuestSpec) -> None:
        self.guests[guest.instance_id] = FakeGuest(spec=guest)
        await self._step(guest, "create_image")

    async def get_guest_xml(self, guest: GuestSpec) -> str:
        await self._step(guest, "get_guest_xml")
        return f"<domain type='fake'><name>drover-{guest.instance_id}</name></domain>"

    async def create_domain_and_network(self, guest: GuestSpec, guest_xml: str) -> None:
        await self._step(guest, "create_domain_and_network")
        g = self.guests.get(guest.instance_id)
        if g is None:
            raise DriverError("guest vanished during spawn")
        g.power_state = PowerState.RUNNING
        g.console = f"fake console of {guest.name}\nDROVER-GUEST-READY\n"

    async def wait_for_boot(self, guest: GuestSpec) -> PowerState:
        await self._step(guest, "wait_for_boot")
        self.emit_lifecycle(guest.instance_id, PowerState.RUNNING)
        return PowerState.RUNNING

    async def destroy(self, instance_id: str) -> None:
        self.guests.pop(instance_id, None)

    def get_power_state(self, instance_id: str) -> PowerState:
        g = self.guests.get(instance_id)
        return g.power_state if g else PowerState.NOSTATE

    def list_instances(self) -> list[str]:
        return list(self.guests)

    def instance_hosts(self) -> dict[str, str]:
        return {iid: g.spec.host for iid, g in self.guests.items()}

    async def get_console_output(self, instance_id: str, length: int = 0) -> str:
        g = self.guests.get(instance_id)
        if g is None:
            raise DriverError(f"instance {instance_id} is not on this agent")
        lines = g.console.splitlines(keepends=True)
        return "".join(lines[-length:] if length > 0 else lines)

    def stop_outside(self, instance_id: str, state: PowerState = PowerState.SHUTDOWN) -> None:
        """Simulate a guest stopped behind drover's back (power-state sync tests)."""
        g = self.guests[instance_id]
        g.power_state = state
        self.emit_lifecycle(instance_id, state)
