"""The compute driver interface (Nova's ``nova.virt.driver.ComputeDriver``, trimmed).

A driver turns a guest description into a running guest on one or more hosts.
``spawn`` walks the seed's four libvirt steps in order; every step is a method
so drivers (and tests) can be read step by step. Every method may be cancelled
(delete while spawning): ``destroy`` must then clean up whatever exists.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field


class PowerState(enum.IntEnum):
    """Nova's power_state values (also drover.v1.PowerState numbers)."""

    NOSTATE = 0
    RUNNING = 1
    PAUSED = 3
    SHUTDOWN = 4
    CRASHED = 6
    SUSPENDED = 7


@dataclass(frozen=True)
class ImageInfo:
    id: str
    path: str
    disk_format: str  # qcow2 | raw | kernel
    initrd_path: str = ""
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GuestSpec:
    """What a driver needs to build one guest."""

    instance_id: str
    name: str
    host: str
    vcpus: int
    memory_mb: int
    root_gb: int
    image: ImageInfo
    ephemeral_gb: int = 0
    swap_mb: int = 0
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass
class HostResources:
    """One host's inventory as the driver sees it (reported to the scheduler)."""

    host: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    hypervisor_type: str
    hypervisor_version: int = 0
    cpu_arch: str = "x86_64"
    capabilities: dict[str, str] = field(default_factory=dict)
    # what Nova's libvirt driver reports besides: placement traits (os-traits names), the host
    # CPU as a cpu_info JSON object, and the (arch, hypervisor type, vm mode) guests it runs
    traits: list[str] = field(default_factory=list)
    cpu_info: str = ""
    supported_instances: list[tuple[str, str, str]] = field(default_factory=list)


# Called with (instance_id, power_state) when the hypervisor reports a change.
LifecycleCallback = Callable[[str, PowerState], None]
# Called with the step name before each spawn step runs.
StepCallback = Callable[[str], Awaitable[None]]

SPAWN_STEPS = ("create_image", "get_guest_xml", "create_domain_and_network", "wait_for_boot")


class DriverError(Exception):
    """A build or delete failed in the driver; the message is shown to the user."""


class ComputeDriver(abc.ABC):
    """Base class of the fake and libvirt drivers."""

    name: str = "base"

    def __init__(self) -> None:
        self._lifecycle_cb: LifecycleCallback | None = None

    def set_lifecycle_callback(self, callback: LifecycleCallback | None) -> None:
        self._lifecycle_cb = callback

    def emit_lifecycle(self, instance_id: str, state: PowerState) -> None:
        if self._lifecycle_cb is not None:
            self._lifecycle_cb(instance_id, state)

    async def init_host(self) -> None:
        """Connect to the hypervisor and prepare local directories."""

    async def cleanup_host(self) -> None:
        """Disconnect; called once at shutdown."""

    @abc.abstractmethod
    def host_resources(self) -> list[HostResources]:
        """The hosts this driver presents (fake: many; libvirt: one)."""

    @abc.abstractmethod
    async def create_image(self, guest: GuestSpec) -> None:
        """Fetch the image into the cache and create the instance's disk."""

    @abc.abstractmethod
    async def get_guest_xml(self, guest: GuestSpec) -> str:
        """Render the guest definition (libvirt domain XML)."""

    @abc.abstractmethod
    async def create_domain_and_network(self, guest: GuestSpec, guest_xml: str) -> None:
        """Define and start the guest, plugging its network."""

    @abc.abstractmethod
    async def wait_for_boot(self, guest: GuestSpec) -> PowerState:
        """Wait until the hypervisor reports the guest RUNNING; return its power state."""

    async def spawn(self, guest: GuestSpec, on_step: StepCallback | None = None) -> PowerState:
        """Nova's ``LibvirtDriver.spawn``: the four steps, in the seed's order."""
        if on_step:
            await on_step("create_image")
        await self.create_image(guest)
        if on_step:
            await on_step("get_guest_xml")
        xml = await self.get_guest_xml(guest)
        if on_step:
            await on_step("create_domain_and_network")
        await self.create_domain_and_network(guest, xml)
        if on_step:
            await on_step("wait_for_boot")
        return await self.wait_for_boot(guest)

    @abc.abstractmethod
    async def destroy(self, instance_id: str) -> None:
        """Stop and remove the guest and everything it left on disk. Idempotent."""

    @abc.abstractmethod
    def get_power_state(self, instance_id: str) -> PowerState:
        """NOSTATE when the driver does not know the instance."""

    @abc.abstractmethod
    def list_instances(self) -> list[str]:
        """Instance ids the driver currently has guests for."""

    def instance_hosts(self) -> dict[str, str]:
        """The host of each guest the driver has (an agent that restarts rebuilds its view from it).
        A driver serving one host has all its guests there."""
        hosts = self.host_resources()
        return {iid: hosts[0].host for iid in self.list_instances()} if len(hosts) == 1 else {}

    async def get_console_output(self, instance_id: str, length: int = 0) -> str:
        """The guest's serial console; ``length`` > 0 keeps the last lines only."""
        raise DriverError(f"the {self.name} driver has no console for instance {instance_id}")
