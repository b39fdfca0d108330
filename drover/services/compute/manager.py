"""The compute manager: Nova's ``ComputeManager.build_and_run_instance`` / ``terminate_instance``.

It walks the build through NETWORKING → BLOCK_DEVICE_MAPPING → SPAWNING and the
driver's spawn steps, reporting every change to the conductor as a cast
(Nova's ``instance.save()`` through conductor), and reports host resources
and heartbeats to the scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from drover.agent.driver import ComputeDriver, GuestSpec, ImageInfo, PowerState
from drover.services.common import metrics, states
from drover.services.common.casts import CastSender
from drover.services.compute.progress import ProgressReporter
from drover.v1 import compute_pb2, conductor_pb2, scheduler_pb2, scheduler_pb2_grpc, types_pb2

log = logging.getLogger(__name__)


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


def _event(event: str, *, start: bool, result: str = "", details: str = "", host: str = "") -> Any:
    ev = conductor_pb2.ActionEventUpdate(action="create", event=event, result=result, details=details, host=host)
    if start:
        ev.start_time.CopyFrom(_now())
    else:
        ev.finish_time.CopyFrom(_now())
    return ev


def _notification(event_type: str, instance_id: str, host: str, **payload: str) -> types_pb2.Notification:
    n = types_pb2.Notification(event_type=event_type, instance_id=instance_id, host=host, payload=payload)
    n.timestamp.CopyFrom(_now())
    return n


class _StepTimer:
    """The driver's spawn steps, each logged and timed (drover_compute_spawn_step_seconds)."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        self._step = ""
        self._started = 0.0

    async def __call__(self, step: str) -> None:
        self.done()
        log.debug("instance %s: spawn step %s", self.instance_id, step)
        self._step, self._started = step, time.perf_counter()

    def done(self) -> None:
        if self._step:
            metrics.SPAWN_STEP_SECONDS.labels(self._step).observe(time.perf_counter() - self._started)
            self._step = ""


def guest_spec(cast: compute_pb2.BuildAndRunInstanceCast) -> GuestSpec:
    inst = cast.instance
    img = inst.image
    return GuestSpec(
        instance_id=inst.id,
        name=inst.name,
        host=cast.host,
        vcpus=inst.flavor.vcpus,
        memory_mb=inst.flavor.memory_mb,
        root_gb=inst.flavor.root_gb,
        ephemeral_gb=inst.flavor.ephemeral_gb,
        swap_mb=inst.flavor.swap_mb,
        image=ImageInfo(
            id=img.id,
            path=img.path,
            disk_format=img.disk_format,
            initrd_path=img.initrd_path,
            properties=dict(img.properties),
        ),
        metadata=dict(inst.metadata),
    )


class ComputeManager:
    def __init__(
        self,
        driver: ComputeDriver,
        conductor: CastSender[Any],
        scheduler: scheduler_pb2_grpc.SchedulerServiceStub,
        *,
        advertise: str,
        report_defaults: dict[str, Any],
        report_interval: float = 10.0,
        sync_power_state_interval: float = 60.0,
    ) -> None:
        self.driver = driver
        self.conductor = conductor
        self.scheduler = scheduler
        self.advertise = advertise
        self.report_defaults = report_defaults
        self.report_interval = report_interval
        self.sync_power_state_interval = sync_power_state_interval
        self._last_sync = time.monotonic()
        # The power state last reported per guest: what the periodic sync compares with.
        self._reported_power: dict[str, PowerState] = {}
        self._builds: dict[str, asyncio.Task[None]] = {}
        self._host_of: dict[str, str] = {}
        self._terminated: set[str] = set()
        self._active_builds: Counter[str] = Counter()
        self._failed_builds: Counter[str] = Counter()
        self._report_task: asyncio.Task[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._report_now = asyncio.Event()
        self.builds_by_result: Counter[str] = Counter()
        self.progress = ProgressReporter(conductor)
        driver.set_lifecycle_callback(self._on_lifecycle)

    # ---- casts -------------------------------------------------------------

    async def handle_cast(self, msg: compute_pb2.ComputeServiceStreamCastsRequest) -> None:
        kind = msg.WhichOneof("cast")
        if kind == "build_and_run_instance":
            await self.build_and_run_instance(msg.build_and_run_instance)
        elif kind == "terminate_instance":
            await self.terminate_instance(msg.terminate_instance)

    def _update(self, instance_id: str, *, host: str, **fields: Any) -> None:
        self.progress.step(instance_id, host, **fields)

    async def build_and_run_instance(self, cast: compute_pb2.BuildAndRunInstanceCast) -> None:
        iid = cast.instance.id
        if iid in self._terminated or iid in self._builds or self._host_of.get(iid) == cast.host:
            return  # a replay or a re-drive of a build this agent already has
        task = asyncio.get_running_loop().create_task(self._build(cast), name=f"build-{iid}")
        self._builds[iid] = task
        self._host_of[iid] = cast.host
        self._active_builds[cast.host] += 1
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                raise
        finally:
            if self._builds.get(iid) is task and task.done():
                del self._builds[iid]
            self._active_builds[cast.host] -= 1

    async def _build(self, cast: compute_pb2.BuildAndRunInstanceCast) -> None:
        guest = guest_spec(cast)
        iid, host = guest.instance_id, cast.host
        self._update(
            iid,
            host=host,
            task_state=types_pb2.TASK_STATE_NETWORKING,
            notification=_notification(states.CREATE_START, iid, host),
            events=[_event(states.EV_BUILD, start=True, host=host)],
        )
        try:
            # Networking: addresses were allocated by the conductor; the driver plugs them in spawn.
            self._update(iid, host=host, task_state=types_pb2.TASK_STATE_BLOCK_DEVICE_MAPPING)
            self._update(
                iid,
                host=host,
                task_state=types_pb2.TASK_STATE_SPAWNING,
                events=[_event(states.EV_SPAWN, start=True, host=host)],
            )
            steps = _StepTimer(iid)
            power = await self.driver.spawn(guest, steps)
            steps.done()
        except asyncio.CancelledError:
            # terminate_instance cancelled us; it cleans up and reports.
            raise
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            log.warning("build of %s on %s failed: %s", iid, host, reason)
            with contextlib.suppress(Exception):
                await self.driver.destroy(iid)
            self._host_of.pop(iid, None)  # gone from this host; a reschedule may bring it back elsewhere
            self._failed_builds[host] += 1
            self.builds_by_result["failed"] += 1
            metrics.BUILDS.labels("failed").inc()
            self._update(
                iid,
                host=host,
                build_failed=True,
                fault=types_pb2.Fault(code=500, message=f"Build of instance {iid} aborted: {reason}"),
                notification=_notification(states.CREATE_ERROR, iid, host, reason=reason),
                events=[
                    _event(states.EV_SPAWN, start=False, result=states.EV_RESULT_ERROR, details=reason, host=host),
                    _event(states.EV_BUILD, start=False, result=states.EV_RESULT_ERROR, details=reason, host=host),
                ],
            )
            return
        self.builds_by_result["success"] += 1
        metrics.BUILDS.labels("success").inc()
        self._reported_power[iid] = PowerState(power)
        self._update(
            iid,
            host=host,
            vm_state=types_pb2.VM_STATE_ACTIVE,
            task_state=types_pb2.TASK_STATE_UNSPECIFIED,
            power_state=int(power),  # type: ignore[arg-type]
            launched_at=_now(),
            notification=_notification(states.CREATE_END, iid, host),
            events=[
                _event(states.EV_SPAWN, start=False, result=states.EV_RESULT_OK, host=host),
                _event(states.EV_BUILD, start=False, result=states.EV_RESULT_OK, host=host),
            ],
        )

    async def terminate_instance(self, cast: compute_pb2.TerminateInstanceCast) -> None:
        iid, host = cast.instance_id, cast.host
        self._terminated.add(iid)
        start = _event(states.EV_TERMINATE, start=True, host=host)
        start.action = "delete"
        self._update(iid, host=host, notification=_notification(states.DELETE_START, iid, host), events=[start])
        build = self._builds.pop(iid, None)
        if build is not None and not build.done():
            build.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await build
        result, details = states.EV_RESULT_OK, ""
        try:
            await self.driver.destroy(iid)
        except Exception as exc:  # the instance is gone from drover either way; say what was left
            result, details = states.EV_RESULT_ERROR, f"destroy failed: {exc}"
            log.exception("destroy of %s failed", iid)
        self._host_of.pop(iid, None)
        self._reported_power.pop(iid, None)
        finish = _event(states.EV_TERMINATE, start=False, result=result, details=details, host=host)
        finish.action = "delete"
        self._update(
            iid,
            host=host,
            terminated=True,
            power_state=types_pb2.POWER_STATE_UNSPECIFIED,
            notification=_notification(states.DELETE_END, iid, host),
            events=[finish],
        )

    # ---- power state sync ----------------------------------------------------

    def _on_lifecycle(self, instance_id: str, state: PowerState) -> None:
        if instance_id in self._builds or instance_id in self._terminated:
            return  # the build/delete reports its own states
        self._reported_power[instance_id] = PowerState(state)
        host = self._host_of.get(instance_id) or self._only_host()
        fields: dict[str, Any] = {"power_state": int(state)}
        if state in (PowerState.SHUTDOWN, PowerState.CRASHED):
            fields["vm_state"] = types_pb2.VM_STATE_STOPPED
        elif state == PowerState.RUNNING:
            fields["vm_state"] = types_pb2.VM_STATE_ACTIVE
        self._update(
            instance_id,
            host=host,
            notification=_notification(states.POWER_UPDATE, instance_id, host, power_state=PowerState(state).name),
            **fields,
        )

    def _only_host(self) -> str:
        """The agent's host when it has one (a guest inherited across a restart is on it);
        an update must name its host, as the conductor applies only those from the sender's hosts."""
        hosts = self.driver.host_resources()
        return hosts[0].host if len(hosts) == 1 else ""

    def sync_power_states(self) -> int:
        """Nova's ``_sync_power_states``: report every guest whose power state differs from what
        was last reported (a lifecycle event that never came, or this agent restarted)."""
        changed = 0
        for iid in self.driver.list_instances():
            if iid in self._builds or iid in self._terminated:
                continue
            state = self.driver.get_power_state(iid)
            if self._reported_power.get(iid) != state:
                log.info("power state sync: instance %s is %s", iid, PowerState(state).name)
                self._on_lifecycle(iid, state)
                changed += 1
        return changed

    def _maybe_sync(self) -> None:
        if self.sync_power_state_interval <= 0:
            return
        now = time.monotonic()
        if now - self._last_sync >= self.sync_power_state_interval:
            self._last_sync = now
            try:
                self.sync_power_states()
                self.send_inventory()
            except Exception:
                log.exception("power state sync failed")

    # ---- what the driver has, against the store ----------------------------------

    def adopt_guests(self) -> int:
        """After a restart: the guests the driver still has are this agent's (their host counts
        them, the power sync watches them). Guests the driver lost are found by the conductor
        from the inventory."""
        found = self.driver.instance_hosts()
        for iid, host in found.items():
            self._host_of.setdefault(iid, host)
        if found:
            log.info("adopted %d guests the driver has", len(found))
        return len(found)

    def send_inventory(self) -> None:
        """Tell the conductor which guests the driver has on our hosts; it compares with the store."""
        inventory = conductor_pb2.GuestInventoryCast(
            hosts=[h.host for h in self.driver.host_resources()], instance_ids=self.driver.list_instances(),
            agent_address=self.advertise)
        inventory.taken_at.CopyFrom(_now())
        self.conductor.cast(guest_inventory=inventory)

    # ---- resource reports ----------------------------------------------------

    def host_reports(self) -> list[scheduler_pb2.HostReport]:
        per_host: Counter[str] = Counter(self._host_of.values())
        generation = time.time_ns()
        out = []
        for res in self.driver.host_resources():
            out.append(
                scheduler_pb2.HostReport(
                    host=res.host,
                    agent_address=self.advertise,
                    vcpus=res.vcpus,
                    memory_mb=res.memory_mb,
                    disk_gb=res.disk_gb,
                    hypervisor_type=res.hypervisor_type,
                    hypervisor_version=res.hypervisor_version,
                    cpu_arch=res.cpu_arch,
                    capabilities=res.capabilities,
                    traits=res.traits,
                    cpu_info=res.cpu_info,
                    supported_instances=[
                        scheduler_pb2.SupportedInstance(arch=a, hypervisor_type=h, vm_mode=m)
                        for a, h, m in res.supported_instances
                    ],
                    enabled=True,
                    io_ops=self._active_builds[res.host],
                    num_instances=per_host[res.host],
                    failed_builds=self._failed_builds[res.host],
                    generation=generation,
                    **self.report_defaults,
                )
            )
        return out

    async def report_once(self, timeout: float = 10.0) -> None:
        reports = self.host_reports()
        for i in range(0, len(reports), 5000):
            await self.scheduler.ReportHosts(
                scheduler_pb2.ReportHostsRequest(reports=reports[i : i + 5000]), timeout=timeout
            )

    async def report_loop(self) -> None:
        retry = 0.2
        while True:
            self._maybe_sync()
            wait = self.report_interval
            try:
                await self.report_once()
                retry = 0.2
            except grpc.aio.AioRpcError as exc:
                # A scheduler that is away (restarting) needs our hosts as soon as it is back.
                log.warning("resource report to the scheduler failed: %s", exc.code().name)
                wait, retry = min(retry, self.report_interval), min(retry * 2, 2.0)
            except Exception:
                log.exception("resource report failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._report_now.wait(), wait)
            self._report_now.clear()

    async def report_on_reconnect(self, channel: grpc.aio.Channel) -> None:
        """Report at once whenever the channel to the scheduler (re)connects: a restarted scheduler
        knows no hosts until they report, and must not wait a whole report interval for them."""
        state = channel.get_state(try_to_connect=True)
        while True:
            await channel.wait_for_state_change(state)
            new = channel.get_state(try_to_connect=True)  # an idle channel reconnects right away
            if new == grpc.ChannelConnectivity.READY and state != grpc.ChannelConnectivity.READY:
                log.info("connected to the scheduler: reporting hosts now")
                self._report_now.set()
            state = new

    @property
    def report_task(self) -> asyncio.Task[None] | None:
        return self._report_task

    @property
    def reconnect_task(self) -> asyncio.Task[None] | None:
        return self._reconnect_task

    def start(self) -> None:
        if self._report_task is None:  # the first start, not a watchdog's restart
            self.adopt_guests()
            if self.sync_power_state_interval > 0:
                self.send_inventory()
        self._report_task = asyncio.get_running_loop().create_task(self.report_loop())

    def watch_scheduler(self, channel: grpc.aio.Channel) -> None:
        self._reconnect_task = asyncio.get_running_loop().create_task(self.report_on_reconnect(channel))

    async def stop(self) -> None:
        for task in (self._report_task, self._reconnect_task):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for task in list(self._builds.values()):
            task.cancel()
        self.progress.flush()  # steps taken since the last report still reach the conductor
