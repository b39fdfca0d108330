"""Process bootstrap for a drover service: event loop, gRPC server, health, reflection, signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from drover.config import ServiceEndpoint
from drover.services.common.tls import Transport
from drover.services.common.watchdog import Watchdog

log = logging.getLogger(__name__)

CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 20000),
    ("grpc.keepalive_timeout_ms", 10000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    # A restarted peer is found again within ~2 s (gRPC's default backoff grows to 120 s).
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]
# Seconds the calls in flight get to finish on SIGTERM before they are cancelled.
DRAIN_GRACE = 3.0
SERVER_OPTIONS = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
]


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def install_event_loop_policy() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass


def channel(target: str, peer_role: str, transport: Transport) -> grpc.aio.Channel:
    """A channel to the internal service of ``peer_role`` at ``target`` (mTLS unless tls.insecure)."""
    return transport.channel(target, peer_role, CHANNEL_OPTIONS)


class ServiceHost:
    """A gRPC server with the standard health and reflection services mounted.

    ``credentials``: TLS for the port (plaintext without); ``check_peers``: apply the internal
    rule table (``peer_auth.RULES``) to every call, for servers that require client certificates;
    ``interceptors``: more server interceptors (the API's authentication), run after those;
    ``max_receive_bytes``: the largest request message (0: the default).
    """

    def __init__(self, listen: str, service_names: Iterable[str], metrics_port: int = 0, *,
                 credentials: grpc.ServerCredentials | None = None, check_peers: bool = False,
                 metrics_listen: str = "127.0.0.1",
                 interceptors: Iterable[grpc.aio.ServerInterceptor] = (), max_receive_bytes: int = 0) -> None:
        from drover.services.common.metrics import MetricsInterceptor
        from drover.services.common.peer_auth import PeerAuthInterceptor

        chain: list[grpc.aio.ServerInterceptor] = [MetricsInterceptor()]
        if check_peers:
            chain.append(PeerAuthInterceptor())
        chain.extend(interceptors)
        options = list(SERVER_OPTIONS)
        if max_receive_bytes:
            options = [o for o in options if o[0] != "grpc.max_receive_message_length"]
            options.append(("grpc.max_receive_message_length", max_receive_bytes))
        self.server = grpc.aio.server(options=options, interceptors=chain)
        self.credentials = credentials
        self.metrics_port = metrics_port
        self.metrics_listen = metrics_listen
        self.listen = listen
        self.service_names = list(service_names)
        self.health = health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            [*self.service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            self.server,
        )
        self.port = 0
        # Background tasks of the service: one that dies turns health NOT_SERVING.
        self.watchdog = Watchdog(self.set_serving, self.service_names[0].rsplit(".", 1)[-1] if self.service_names
                                 else "service")

    def add(self, adder: Callable[[Any, grpc.aio.Server], None], servicer: Any) -> None:
        adder(servicer, self.server)

    def bind(self) -> int:
        """Bind the listening port (before servicers are added, so its number can be advertised)."""
        if not self.port:
            if self.credentials is not None:
                self.port = self.server.add_secure_port(self.listen, self.credentials)
            else:
                self.port = self.server.add_insecure_port(self.listen)
            if self.port == 0:
                raise OSError(f"cannot listen on {self.listen}")
        return self.port

    @property
    def address(self) -> str:
        return f"{self.listen.rsplit(':', 1)[0]}:{self.port}"

    async def start(self) -> int:
        from drover.services.common.metrics import serve_http

        self.bind()
        await self.server.start()
        if self.metrics_port:
            self.metrics_port = serve_http(self.metrics_port, self.metrics_listen)
            log.info("metrics on http://%s:%d/metrics", self.metrics_listen, self.metrics_port)
        await self.set_serving(True)
        self.watchdog.start()
        return self.port

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *self.service_names]:
            res = self.health.set(name, status)
            if asyncio.iscoroutine(res):
                await res

    async def stop(self, grace: float = 2.0) -> None:
        await self.watchdog.stop()
        await self.set_serving(False)
        await self.server.stop(grace)


async def serve_until_signal(
    host: ServiceHost,
    description: str,
    *,
    started: Callable[[], None] | None = None,
    stopping: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ready: Callable[[int], None] | None = None,
) -> None:
    """Start ``host``, run until SIGINT/SIGTERM, then stop gracefully.

    Health turns NOT_SERVING first (load balancers drain), the gRPC server stops taking calls and
    lets those in flight finish (``DRAIN_GRACE``), then ``stopping`` runs (flush casts, finish
    in-flight work).
    """
    from drover.services.common import loop_lag

    port = await host.start()
    lag = loop_lag.start()
    if started is not None:
        started()
    log.info("%s listening on %s", description, host.address)
    if ready is not None:
        ready(port)
    try:
        await wait_for_signal()
    finally:
        await host.watchdog.stop()  # the tasks stopped now are not deaths
        await host.set_serving(False)
        # No new calls, and the calls in flight finish (within a grace) while the servicer's group
        # commit and cast senders still run: only then are those drained and stopped.
        await host.server.stop(DRAIN_GRACE)
        if stopping is not None:
            await stopping()
        await host.stop(1.0)
        await loop_lag.stop(lag)


async def wait_for_signal() -> None:
    """Return on SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    install_event_loop_policy()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def internal_host(endpoint: ServiceEndpoint, service_names: Iterable[str], transport: Transport) -> ServiceHost:
    """The server of an internal service: mTLS, every call checked against the rule table."""
    return ServiceHost(endpoint.listen, service_names, endpoint.metrics_port,
                       credentials=transport.server_credentials(), check_peers=transport.secure,
                       metrics_listen=endpoint.metrics_listen)
