"""``LibvirtDriver``: real guests under libvirt/QEMU (Nova's ``nova.virt.libvirt.driver``, trimmed).

Spawn follows Nova's four steps: ``create_image`` (image cache + per-instance qcow2
overlay, or kernel + initrd for direct kernel boot), ``get_guest_xml``,
``create_domain_and_network`` (define + start) and ``wait_for_boot`` (lifecycle event
for RUNNING, polling every 0.5 s as a fallback, like Nova's ``_wait_for_boot``).

Threading. libvirt calls and file work block, so they run on a small private thread
pool, never on the asyncio loop. A thread cannot be interrupted, so a spawn that is
cancelled (delete while spawning) may still have one blocking step in flight. Two
things keep that from leaking a guest:

* ``destroy`` marks the instance deleted (a *tombstone*) synchronously, before it
  awaits anything; every later blocking step of that instance's spawn checks the
  tombstone and refuses to create anything;
* blocking steps of one instance run under a per-instance ``threading.Lock``, so
  ``destroy`` waits for a step in flight and then removes what it made.

A new ``spawn`` of the same instance id clears the tombstone.

Lifecycle events come from libvirt's event loop thread (``events.py``) and are handed
to the asyncio loop with ``call_soon_threadsafe``: they wake ``wait_for_boot`` and are
passed to the manager through ``emit_lifecycle`` (domain stopped or killed outside
drover → SHUTDOWN / CRASHED). Events caused by the driver's own ``destroy`` are not
passed on: the manager already knows it is deleting the instance.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import libvirt

from drover.agent.driver import ComputeDriver, DriverError, GuestSpec, HostResources, PowerState, StepCallback
from drover.agent.libvirt import events, host_caps
from drover.agent.libvirt.guest_xml import (
    DEFAULT_CMDLINE,
    DiskConfig,
    GuestConfig,
    build_domain_xml,
    domain_name,
    instance_id_from_domain,
)
from drover.agent.libvirt.image_cache import GiB, ImageCache, create_blank, create_overlay, link_or_copy

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_INSTANCES_PATH = Path("/var/lib/drover/instances")
CONSOLE_LOG = "console.log"
CONSOLE_MAX_BYTES = 100 * 1024  # Nova's MAX_CONSOLE_BYTES
_TOMBSTONES_KEPT = 10_000


def _silence_libvirt_stderr() -> None:
    # libvirt prints every error (e.g. "Domain not found" on idempotent deletes) to
    # stderr unless an error handler is registered; errors still raise libvirtError.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def kvm_usable() -> bool:
    return os.path.exists("/dev/kvm") and os.access("/dev/kvm", os.R_OK | os.W_OK)


class LibvirtDriver(ComputeDriver):
    """One libvirt host (``qemu:///system``; ``test:///default`` for fast tests)."""

    name = "libvirt"

    def __init__(
        self,
        uri: str = "qemu:///system",
        instances_path: Path | str = DEFAULT_INSTANCES_PATH,
        image_cache_path: Path | str | None = None,
        host_name: str | None = None,
        virt_type: str = "auto",
        boot_timeout: float = 60.0,
        nic: str = "auto",
        poll_interval: float = 0.5,
        max_workers: int = 16,
    ) -> None:
        super().__init__()
        if virt_type not in ("auto", "kvm", "qemu"):
            raise ValueError(f"virt_type must be auto, kvm or qemu, not {virt_type!r}")
        if nic not in ("auto", "user", "none"):
            raise ValueError(f"nic must be auto, user or none, not {nic!r}")
        self.uri = uri
        # libvirt needs absolute paths (kernel, disks, console log)
        self.instances_path = Path(instances_path).absolute()
        self.image_cache = ImageCache(
            Path(image_cache_path).absolute() if image_cache_path else self.instances_path / "_base"
        )
        self.host_name = host_name
        self.requested_virt_type = virt_type
        self.virt_type = "qemu"  # resolved in init_host
        self.boot_timeout = boot_timeout
        self.requested_nic = nic
        self.nic = "none"  # resolved in init_host
        self.poll_interval = poll_interval

        self._max_workers = max_workers
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="libvirt-driver"
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn_lock = threading.Lock()
        self._conn_obj: libvirt.virConnect | None = None
        self._conn_alive = False
        self._event_cb_id: int | None = None
        self._node_info: list[Any] | None = None
        self._hv_version = 0
        self._host_caps = host_caps.HostCapabilities()
        self._memory_mb = 0
        self._lib_version = 0
        self._kvm_available = False

        self._ilocks_lock = threading.Lock()
        self._ilocks: dict[str, threading.Lock] = {}
        # instance id -> monotonic time of the destroy; read from worker threads
        self._tombstones: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._boot_waiters: dict[str, asyncio.Event] = {}
        self._last_emitted: dict[str, PowerState] = {}

    # ------------------------------------------------------------------ plumbing
    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise DriverError("libvirt driver: cleanup_host has run; call init_host first")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def _ilock(self, instance_id: str) -> threading.Lock:
        with self._ilocks_lock:
            lock = self._ilocks.get(instance_id)
            if lock is None:
                lock = self._ilocks[instance_id] = threading.Lock()
            return lock

    def _tombstone(self, instance_id: str) -> None:
        self._tombstones[instance_id] = time.monotonic()
        self._tombstones.move_to_end(instance_id)
        while len(self._tombstones) > _TOMBSTONES_KEPT:
            self._tombstones.popitem(last=False)

    def is_deleted(self, instance_id: str) -> bool:
        return instance_id in self._tombstones

    def _check_not_deleted(self, instance_id: str) -> None:
        if instance_id in self._tombstones:
            raise DriverError(f"instance {instance_id} was deleted during spawn")

    def instance_dir(self, instance_id: str) -> Path:
        if not instance_id or "/" in instance_id or instance_id in (".", "..", "_base"):
            raise DriverError(f"invalid instance id {instance_id!r}")
        return self.instances_path / instance_id

    def console_path(self, instance_id: str) -> Path:
        return self.instance_dir(instance_id) / CONSOLE_LOG

    # ---------------------------------------------------------------- connection
    def _conn(self) -> libvirt.virConnect:
        conn = self._conn_obj
        if conn is not None and self._conn_alive:
            return conn
        with self._conn_lock:
            if self._conn_obj is None or not self._conn_alive:
                self._connect()
            assert self._conn_obj is not None
            return self._conn_obj

    def _connect(self) -> None:
        """Open (or re-open) the connection and subscribe to lifecycle events. Holds _conn_lock."""
        old = self._conn_obj
        if old is not None:
            with contextlib.suppress(libvirt.libvirtError):
                old.close()
            self._conn_obj = None
        try:
            conn = libvirt.open(self.uri)
        except libvirt.libvirtError as e:
            raise DriverError(f"cannot connect to libvirt at {self.uri}: {e}") from e
        with contextlib.suppress(libvirt.libvirtError):
            conn.registerCloseCallback(self._on_close, None)
        with contextlib.suppress(libvirt.libvirtError):
            conn.setKeepAlive(5, 3)  # remote (unix socket) connections only
        self._event_cb_id = conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None
        )
        self._conn_obj = conn
        self._conn_alive = True

    def _on_close(self, _conn: Any, reason: int, _opaque: Any) -> None:
        log.warning("libvirt connection to %s closed (reason %s); will reconnect", self.uri, reason)
        self._conn_alive = False

    # ------------------------------------------------------------------- events
    def _on_lifecycle(self, _conn: Any, dom: Any, event: int, detail: int, _opaque: Any) -> None:
        """libvirt event thread."""
        try:
            instance_id = instance_id_from_domain(dom.name())
        except libvirt.libvirtError:
            return
        if instance_id is None:
            return
        state = events.event_to_power_state(event, detail)
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # loop closed meanwhile
            loop.call_soon_threadsafe(self._dispatch_event, instance_id, event, detail, state)

    def _dispatch_event(self, instance_id: str, event: int, detail: int, state: PowerState | None) -> None:
        """asyncio loop."""
        log.debug("instance %s: libvirt event %s -> %s", instance_id, events.describe_event(event, detail), state)
        if state is None:
            return
        waiter = self._boot_waiters.get(instance_id)
        if waiter is not None:
            waiter.set()
        if instance_id in self._tombstones:
            self._last_emitted.pop(instance_id, None)
            return  # our own destroy
        if self._last_emitted.get(instance_id) == state:
            return  # e.g. STARTED then RESUMED
        self._last_emitted[instance_id] = state
        try:
            self.emit_lifecycle(instance_id, state)
        except Exception:
            log.exception("lifecycle callback failed for %s", instance_id)

    # ---------------------------------------------------------------- host side
    async def init_host(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._executor is None:  # init_host after cleanup_host
            self._executor = ThreadPoolExecutor(self._max_workers, thread_name_prefix="libvirt-driver")
        await self._run(self._init_host_sync)

    def _init_host_sync(self) -> None:
        _silence_libvirt_stderr()
        events.ensure_event_loop()
        self.instances_path.mkdir(parents=True, exist_ok=True)
        self.image_cache.path.mkdir(parents=True, exist_ok=True)
        conn = self._conn()
        try:
            self._node_info = conn.getInfo()
            self._memory_mb = int(self._node_info[1])
            with contextlib.suppress(libvirt.libvirtError, KeyError, TypeError):
                # getInfo counts NUMA-node memory only, which can be far below the host's
                total_kib = conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS)["total"]
                self._memory_mb = max(self._memory_mb, int(total_kib) // 1024)
            self._hv_version = conn.getVersion()
            self._lib_version = conn.getLibVersion()
            if self.host_name is None:
                self.host_name = conn.getHostname()
            caps = conn.getCapabilities()
        except libvirt.libvirtError as e:
            raise DriverError(f"libvirt at {self.uri} does not answer: {e}") from e
        self._kvm_available = kvm_usable() and "type='kvm'" in caps.replace('"', "'")
        self._host_caps = host_caps.parse(caps)
        if self.requested_virt_type == "kvm":
            if self._kvm_available:
                self.virt_type = "kvm"
            else:
                log.warning("virt_type=kvm but /dev/kvm is not usable here: using qemu (TCG)")
                self.virt_type = "qemu"
        else:
            # "auto": TCG. KVM guests have hung early in boot on the nested-virt machines
            # drover runs on; ask for kvm explicitly where it works.
            self.virt_type = "qemu"
        if self.requested_nic == "auto":
            self.nic = "none" if self.uri.startswith("test:") else "user"
        else:
            self.nic = self.requested_nic
        log.info(
            "libvirt driver: %s, host %s, virt_type %s, nic %s, instances %s",
            self.uri,
            self.host_name,
            self.virt_type,
            self.nic,
            self.instances_path,
        )

    async def cleanup_host(self) -> None:
        if self._executor is None:
            return  # already cleaned up
        await self._run(self._cleanup_host_sync)
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)
        self._loop = None

    def _cleanup_host_sync(self) -> None:
        with self._conn_lock:
            conn, self._conn_obj, self._conn_alive = self._conn_obj, None, False
            if conn is None:
                return
            if self._event_cb_id is not None:
                with contextlib.suppress(libvirt.libvirtError):
                    conn.domainEventDeregisterAny(self._event_cb_id)
                self._event_cb_id = None
            with contextlib.suppress(libvirt.libvirtError):
                conn.unregisterCloseCallback()
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

    def host_resources(self) -> list[HostResources]:
        if self._node_info is None:
            raise DriverError("libvirt driver: init_host has not run")
        arch, cpus = self._node_info[0], self._node_info[2]
        memory_mb = self._memory_mb
        try:
            free_gb = shutil.disk_usage(self.instances_path).free // GiB
        except OSError:
            free_gb = 0
        return [
            HostResources(
                host=self.host_name or "localhost",
                vcpus=int(cpus),
                memory_mb=int(memory_mb),
                disk_gb=int(free_gb),
                hypervisor_type="QEMU",
                hypervisor_version=int(self._hv_version),
                cpu_arch=str(arch),
                capabilities={
                    "virt_type": self.virt_type,
                    "kvm_available": str(self._kvm_available).lower(),
                    "libvirt_version": str(self._lib_version),
                    "direct_kernel_boot": "true",
                    "uri": self.uri,
                },
                traits=self._host_caps.traits,
                cpu_info=self._host_caps.cpu_info_json(),
                supported_instances=self._host_caps.supported_instances,
            )
        ]

    # -------------------------------------------------------------------- spawn
    async def spawn(self, guest: GuestSpec, on_step: StepCallback | None = None) -> PowerState:
        # A new build of this id: forget an earlier delete. Done synchronously, so a
        # destroy that arrives at any later point of this spawn wins.
        self._tombstones.pop(guest.instance_id, None)
        self._last_emitted.pop(guest.instance_id, None)
        try:
            return await super().spawn(guest, on_step)
        except DriverError:
            # Leave nothing behind after a failed build (the manager's destroy is then a no-op).
            # Not on cancellation: the caller's destroy handles that.
            if not self.is_deleted(guest.instance_id):
                with contextlib.suppress(Exception):
                    await self._run(self._destroy_sync, guest.instance_id)
            raise

    async def create_image(self, guest: GuestSpec) -> None:
        await self._run(self._create_image_sync, guest)

    def _create_image_sync(self, guest: GuestSpec) -> None:
        iid = guest.instance_id
        image = guest.image
        idir = self.instance_dir(iid)
        with self._ilock(iid):
            self._check_not_deleted(iid)
            idir.mkdir(parents=True, exist_ok=True)
            try:
                if image.disk_format == "kernel":
                    kernel, initrd = self.image_cache.fetch_kernel(image)
                    link_or_copy(kernel, idir / "kernel")
                    if initrd is not None:
                        link_or_copy(initrd, idir / "initrd")
                elif image.disk_format in ("qcow2", "raw"):
                    base = self.image_cache.fetch_disk(image)
                    vsize = self.image_cache.virtual_size(image, base)
                    want = guest.root_gb * GiB
                    if want and want < vsize:
                        raise DriverError(
                            f"flavor root disk ({guest.root_gb} GB) is smaller than image {image.id} "
                            f"({vsize / GiB:.1f} GB)"
                        )
                    create_overlay(base, image.disk_format, idir / "disk", want if want > vsize else None)
                else:
                    raise DriverError(f"unsupported disk_format {image.disk_format!r} of image {image.id}")
                if guest.ephemeral_gb > 0:
                    create_blank(idir / "disk.eph0", guest.ephemeral_gb * GiB)
                if guest.swap_mb > 0:
                    create_blank(idir / "disk.swap", guest.swap_mb * 1024 * 1024)
            except OSError as e:
                raise DriverError(f"creating the disks of instance {iid} failed: {e}") from e

    def guest_config(self, guest: GuestSpec) -> GuestConfig:
        """The non-flavor half of the guest definition (paths, boot, devices)."""
        idir = self.instance_dir(guest.instance_id)
        props = guest.image.properties
        disks: list[DiskConfig] = []
        kernel = initrd = cmdline = None
        bus = props.get("hw_disk_bus", "virtio")
        if guest.image.disk_format == "kernel":
            kernel = str(idir / "kernel")
            initrd = str(idir / "initrd") if guest.image.initrd_path else None
            cmdline = props.get("os_command_line", DEFAULT_CMDLINE)
        else:
            disks.append(DiskConfig(str(idir / "disk"), "qcow2", "vda", bus))
        if guest.ephemeral_gb > 0:
            disks.append(DiskConfig(str(idir / "disk.eph0"), "qcow2", "vdb", bus))
        if guest.swap_mb > 0:
            disks.append(DiskConfig(str(idir / "disk.swap"), "qcow2", "vdc", bus))
        nic = self.nic
        if props.get("hw_vif_model") == "none":
            nic = "none"
        return GuestConfig(
            virt_type=self.virt_type,
            console_path=str(idir / CONSOLE_LOG),
            disks=tuple(disks),
            kernel=kernel,
            initrd=initrd,
            cmdline=cmdline,
            nic=nic,
            nic_model=props.get("hw_vif_model", "virtio") if nic != "none" else "virtio",
            machine=props.get("hw_machine_type"),
        )

    async def get_guest_xml(self, guest: GuestSpec) -> str:
        try:
            return build_domain_xml(guest, self.guest_config(guest))
        except ValueError as e:
            raise DriverError(f"cannot build the guest definition: {e}") from e

    async def create_domain_and_network(self, guest: GuestSpec, guest_xml: str) -> None:
        await self._run(self._create_domain_sync, guest.instance_id, guest_xml)

    def _create_domain_sync(self, instance_id: str, guest_xml: str) -> None:
        with self._ilock(instance_id):
            self._check_not_deleted(instance_id)
            conn = self._conn()
            try:
                dom = conn.defineXML(guest_xml)
            except libvirt.libvirtError as e:
                raise DriverError(f"defining the guest failed: {e}") from e
            try:
                if not dom.isActive():
                    dom.create()
            except libvirt.libvirtError as e:
                with contextlib.suppress(libvirt.libvirtError):
                    dom.undefine()
                raise DriverError(f"starting the guest failed: {e}") from e

    async def wait_for_boot(self, guest: GuestSpec) -> PowerState:
        iid = guest.instance_id
        loop = asyncio.get_running_loop()
        waiter = self._boot_waiters.setdefault(iid, asyncio.Event())
        deadline = loop.time() + self.boot_timeout
        try:
            while True:
                self._check_not_deleted(iid)
                waiter.clear()
                state = await self._run(self._domain_power_state, iid)
                self._check_not_deleted(iid)
                if state == PowerState.RUNNING:
                    return state
                if state == PowerState.NOSTATE:
                    raise DriverError(f"guest of instance {iid} disappeared while booting")
                if state in (PowerState.SHUTDOWN, PowerState.CRASHED):
                    raise DriverError(f"guest of instance {iid} stopped while booting ({state.name})")
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise DriverError(
                        f"guest of instance {iid} not running after {self.boot_timeout:.0f}s ({state.name})"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.wait(), min(self.poll_interval, remaining))
        finally:
            if self._boot_waiters.get(iid) is waiter:
                del self._boot_waiters[iid]

    # ------------------------------------------------------------------ destroy
    async def destroy(self, instance_id: str) -> None:
        self.instance_dir(instance_id)  # validate before marking
        self._tombstone(instance_id)
        self._last_emitted.pop(instance_id, None)
        waiter = self._boot_waiters.get(instance_id)
        if waiter is not None:
            waiter.set()
        await self._run(self._destroy_sync, instance_id)

    def _lookup(self, instance_id: str) -> Any | None:
        try:
            return self._conn().lookupByName(domain_name(instance_id))
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise DriverError(f"looking up the guest of {instance_id} failed: {e}") from e

    def _destroy_sync(self, instance_id: str) -> None:
        with self._ilock(instance_id):
            dom = self._lookup(instance_id)
            if dom is not None:
                self._destroy_domain(dom, instance_id)
                self._undefine_domain(dom, instance_id)
            idir = self.instance_dir(instance_id)
            shutil.rmtree(idir, ignore_errors=True)
            if idir.exists():
                raise DriverError(f"could not remove {idir}")

    def _destroy_domain(self, dom: Any, instance_id: str) -> None:
        for attempt in range(3):
            try:
                if dom.isActive():
                    dom.destroy()
                return
            except libvirt.libvirtError as e:
                code = e.get_error_code()
                if code in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID):
                    return  # gone, or not running any more
                if attempt == 2:
                    raise DriverError(f"stopping the guest of {instance_id} failed: {e}") from e
                time.sleep(0.5)  # e.g. EBUSY while QEMU is still starting (Nova retries too)

    def _undefine_domain(self, dom: Any, instance_id: str) -> None:
        flags = libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        try:
            dom.undefineFlags(flags)
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return
            try:
                dom.undefine()
            except libvirt.libvirtError as e2:
                if e2.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise DriverError(f"undefining the guest of {instance_id} failed: {e2}") from e2

    # ------------------------------------------------------------------ queries
    def _domain_power_state(self, instance_id: str) -> PowerState:
        dom = self._lookup(instance_id)
        if dom is None:
            return PowerState.NOSTATE
        try:
            state, reason = dom.state()
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return PowerState.NOSTATE
            raise DriverError(f"reading the state of {instance_id} failed: {e}") from e
        return events.domain_state_to_power_state(state, reason)

    def get_power_state(self, instance_id: str) -> PowerState:
        return self._domain_power_state(instance_id)

    def list_instances(self) -> list[str]:
        try:
            doms = self._conn().listAllDomains(0)
        except libvirt.libvirtError as e:
            raise DriverError(f"listing guests failed: {e}") from e
        ids = []
        for dom in doms:
            with contextlib.suppress(libvirt.libvirtError):
                iid = instance_id_from_domain(dom.name())
                if iid is not None:
                    ids.append(iid)
        return sorted(ids)

    async def get_console_output(self, instance_id: str, length: int = 0) -> str:
        return await self._run(self._console_sync, instance_id, length)

    def _console_sync(self, instance_id: str, length: int) -> str:
        path = self.console_path(instance_id)
        try:
            with open(path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - CONSOLE_MAX_BYTES))
                data = f.read()
        except FileNotFoundError:
            if self.instance_dir(instance_id).is_dir() or self._lookup(instance_id) is not None:
                return ""
            raise DriverError(f"instance {instance_id} has no guest on this host") from None
        text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
        if length > 0:
            text = "\n".join(text.splitlines()[-length:])
        return text

    async def wait_for_console(self, instance_id: str, marker: str, timeout: float = 60.0, poll: float = 0.05) -> float:
        """Wait for ``marker`` in the guest's serial console; seconds waited.

        Raises DriverError on timeout, or when the guest stops or is deleted first.
        """
        loop = asyncio.get_running_loop()
        start = loop.time()
        path = self.console_path(instance_id)
        pos = 0
        tail = b""
        needle = marker.encode()
        next_state_check = start + 1.0
        while True:
            chunk, pos = await self._run(_read_from, path, pos)
            if chunk:
                buf = tail + chunk
                if needle in buf:
                    return loop.time() - start
                tail = buf[-len(needle) :]
            now = loop.time()
            if self.is_deleted(instance_id):
                raise DriverError(f"instance {instance_id} was deleted while waiting for its console")
            if now >= next_state_check:
                next_state_check = now + 1.0
                state = await self._run(self._domain_power_state, instance_id)
                if state != PowerState.RUNNING:
                    raise DriverError(f"guest of {instance_id} is {state.name}; {marker!r} never appeared")
            if now - start >= timeout:
                raise DriverError(f"{marker!r} did not appear on the console of {instance_id} in {timeout:.0f}s")
            await asyncio.sleep(poll)


def _read_from(path: Path, pos: int) -> tuple[bytes, int]:
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size < pos:  # truncated (guest restarted): start over
                pos = 0
            f.seek(pos)
            data = f.read()
    except FileNotFoundError:
        return b"", 0
    return data, pos + len(data)
