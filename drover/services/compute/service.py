"""ComputeService servicer and process entry point."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import grpc

from drover.agent.driver import ComputeDriver, DriverError
from drover.config import DroverConfig
from drover.services.common import metrics, peer_auth, runtime, tls
from drover.services.common.casts import CastReceiver, CastSender
from drover.services.common.errors import ApiError, guarded
from drover.services.compute.manager import ComputeManager
from drover.v1 import compute_pb2, compute_pb2_grpc, conductor_pb2, conductor_pb2_grpc, scheduler_pb2_grpc

log = logging.getLogger(__name__)
SERVICE_NAME = compute_pb2.DESCRIPTOR.services_by_name["ComputeService"].full_name


def make_driver(cfg: DroverConfig) -> ComputeDriver:
    c = cfg.compute
    if c.driver == "fake":
        from drover.agent.fake import FakeDriver

        return FakeDriver(
            hosts=c.fake_hosts,
            host_prefix=c.fake_host_prefix,
            vcpus=c.fake_vcpus,
            memory_mb=c.fake_memory_mb,
            disk_gb=c.fake_disk_gb,
            step_seconds=c.fake_step_seconds,
            traits=c.fake_traits,
            cpu_info=c.fake_cpu_info,
            supported_instances=c.fake_supported_instances,
        )
    if c.driver == "libvirt":
        from drover.agent.libvirt.driver import LibvirtDriver

        instances = Path(c.instances_path) if c.instances_path else cfg.data_path / "instances"
        return LibvirtDriver(
            uri=c.libvirt_uri,
            instances_path=instances,
            image_cache_path=cfg.data_path / "image-cache",
            host_name=c.host or socket.gethostname(),
            virt_type=c.virt_type,
            boot_timeout=c.boot_timeout,
            nic=c.nic,
        )
    raise ValueError(f"unknown compute driver {c.driver!r} (fake, libvirt)")


class ComputeServicer(compute_pb2_grpc.ComputeServiceServicer):
    def __init__(self, manager: ComputeManager) -> None:
        self.manager = manager
        self.receiver: CastReceiver[Any] = CastReceiver(
            "compute", manager.handle_cast, compute_pb2.ComputeServiceStreamCastsResponse
        )

    async def StreamCasts(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        peer = peer_auth.peer_of(context)
        admit = peer_auth.cast_gate(SERVICE_NAME, peer)
        async for resp in self.receiver.serve(request_iterator, context, admit=admit,
                                              peer=peer.key if peer else ""):
            yield resp

    @guarded
    async def GetConsoleOutput(
        self, request: compute_pb2.ComputeServiceGetConsoleOutputRequest, context: grpc.aio.ServicerContext
    ) -> compute_pb2.ComputeServiceGetConsoleOutputResponse:
        try:
            out = await self.manager.driver.get_console_output(request.instance_id, request.length)
        except DriverError as exc:
            raise ApiError(grpc.StatusCode.NOT_FOUND, str(exc)) from exc
        return compute_pb2.ComputeServiceGetConsoleOutputResponse(output=out)


async def serve(cfg: DroverConfig, *, ready: Any = None) -> None:
    c = cfg.compute
    driver = make_driver(cfg)
    await driver.init_host()
    transport = tls.transport(cfg, peer_auth.COMPUTE)
    host = runtime.internal_host(c, [SERVICE_NAME], transport)
    conductor_channel = runtime.channel(c.conductor, peer_auth.CONDUCTOR, transport)
    scheduler_channel = runtime.channel(c.scheduler, peer_auth.SCHEDULER, transport)
    conductor_stub = conductor_pb2_grpc.ConductorServiceStub(conductor_channel)
    sender: CastSender[Any] = CastSender(
        "compute->conductor", lambda: conductor_stub.StreamCasts(), conductor_pb2.ConductorServiceStreamCastsRequest
    )
    port = host.bind()
    advertise = c.advertise or f"{c.listen.rsplit(':', 1)[0]}:{port}"
    manager = ComputeManager(
        driver,
        sender,
        scheduler_pb2_grpc.SchedulerServiceStub(scheduler_channel),
        advertise=advertise,
        report_interval=c.report_interval,
        sync_power_state_interval=c.sync_power_state_interval,
        report_defaults=dict(
            availability_zone=c.availability_zone,
            cpu_allocation_ratio=c.cpu_allocation_ratio,
            ram_allocation_ratio=c.ram_allocation_ratio,
            disk_allocation_ratio=c.disk_allocation_ratio,
            reserved_memory_mb=c.reserved_host_memory_mb,
            reserved_disk_gb=c.reserved_host_disk_gb,
        ),
    )
    servicer = ComputeServicer(manager)
    metrics.watch_sender(sender)
    metrics.watch_receiver(servicer.receiver)
    host.add(compute_pb2_grpc.add_ComputeServiceServicer_to_server, servicer)

    def started() -> None:
        manager.start()
        manager.watch_scheduler(scheduler_channel)
        sender.start()

    host.watchdog.watch("casts-to-conductor", lambda: sender.task, sender.start)
    host.watchdog.watch("reports", lambda: manager.report_task, manager.start)
    host.watchdog.watch("scheduler-reconnect", lambda: manager.reconnect_task, lambda: manager.watch_scheduler(
        scheduler_channel))

    async def stopping() -> None:
        await sender.close(drain_timeout=2.0)
        await manager.stop()

    description = f"compute agent ({c.driver} driver, {len(driver.host_resources())} hosts, advertised as {advertise})"
    try:
        await runtime.serve_until_signal(host, description, started=started, stopping=stopping, ready=ready)
    finally:
        await driver.cleanup_host()
        await conductor_channel.close()
        await scheduler_channel.close()


def main(cfg: DroverConfig) -> None:
    runtime.setup_logging(cfg.log_level)
    runtime.run(lambda: serve(cfg))
