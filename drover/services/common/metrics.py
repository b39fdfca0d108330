"""Prometheus metrics: the conventional gRPC server metrics (as go-grpc-prometheus names them)
plus drover's own. Each service serves them over HTTP on its ``metrics_port``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

_LABELS = ("grpc_type", "grpc_service", "grpc_method")
GRPC_STARTED = Counter("grpc_server_started_total", "RPCs started on the server.", _LABELS)
GRPC_HANDLED = Counter("grpc_server_handled_total", "RPCs completed on the server, by status code.",
                       (*_LABELS, "grpc_code"))
GRPC_SECONDS = Histogram("grpc_server_handling_seconds", "Time to handle an RPC, until its status is sent.",
                         _LABELS, buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
GRPC_MSG_RECEIVED = Counter("grpc_server_msg_received_total", "Stream messages received.", _LABELS)
GRPC_MSG_SENT = Counter("grpc_server_msg_sent_total", "Stream messages sent.", _LABELS)

SELECT_SECONDS = Histogram("drover_scheduler_select_seconds", "SelectDestinations time in scheduler_core.",
                           buckets=(1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 5e-2))
SELECT_HOSTS = Histogram("drover_scheduler_hosts_per_select", "Hosts considered by one select.",
                         buckets=(1, 10, 100, 1000, 10_000, 100_000, 1_000_000))
HOSTS_REJECTED = Counter("drover_scheduler_hosts_rejected_total", "Hosts rejected, by the filter that did it.",
                         ("filter",))
NO_VALID_HOST = Counter("drover_scheduler_no_valid_host_total", "Selects that found no valid host.")
SCHEDULER_HOSTS = Gauge("drover_scheduler_hosts", "Hosts in the scheduler's table, by liveness.", ("state",))
BUILDS = Counter("drover_compute_builds_total", "Builds finished on compute agents, by result.", ("result",))
STORE_TXN_SECONDS = Histogram(
    "drover_store_transaction_seconds",
    "Group-commit transactions: waiting for the store's write lock (wait), then holding it until commit (held).",
    ("store", "phase"), buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)
STORE_TXN_BATCH = Histogram("drover_store_transaction_batch", "Pieces of work sharing one group-commit transaction.",
                            ("store",), buckets=(1, 2, 4, 8, 16, 32, 64, 128))
SPAWN_STEP_SECONDS = Histogram(
    "drover_compute_spawn_step_seconds", "Time of each driver spawn step (create_image … wait_for_boot).", ("step",),
    buckets=(0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
CASTS_SENT = Counter("drover_casts_sent_total", "Casts queued for sending.", ("stream",))
CAST_QUEUE = Gauge("drover_cast_queue_depth", "Casts sent but not yet acknowledged.", ("stream",))
CAST_REPLAYS = Gauge("drover_cast_replays", "Casts replayed after a reconnect (since start).", ("stream",))
CASTS_APPLIED = Gauge("drover_casts_applied", "Casts applied by this receiver (since start).", ("receiver",))
CASTS_DUPLICATE = Gauge("drover_casts_duplicate", "Replayed casts ignored as already applied.", ("receiver",))
CASTS_FAILED = Gauge("drover_casts_failed", "Casts whose handler raised (since start).", ("receiver",))
CASTS_INFLIGHT = Gauge("drover_casts_inflight", "Casts being applied now.", ("receiver",))
INSTANCES = Gauge("drover_instances", "Instances in the store, by vm_state.", ("vm_state",))
# Recovery: what the services did to heal after a fault.
TASK_DEATHS = Counter("drover_background_task_deaths_total", "Background tasks that ended unexpectedly.",
                      ("service", "task"))
GROUP_COMMIT_FAILURES = Counter("drover_store_batch_failures_total",
                                "Group-commit batches that failed as a whole (their waiters got the error).",
                                ("store", "reason"))
REDRIVES = Counter("drover_conductor_redrives_total", "Builds and deletes re-driven from the store.", ("kind",))
SELECT_RETRIES = Counter("drover_conductor_select_retries_total",
                         "Selects retried because the scheduler was unavailable or warming up.")
RESCHEDULES = Counter("drover_conductor_reschedules_total", "Failed builds rescheduled to another host.")
RELEASES_LATE = Counter("drover_claims_released_late_total",
                        "Claim releases that landed only after a retry (the scheduler was away).")
RECONCILE_FIXES = Counter("drover_reconcile_fixes_total",
                          "Differences between the store and a compute's guests that were acted on, by kind.",
                          ("kind",))
IDEMPOTENT_HITS = Counter("drover_api_idempotent_hits_total",
                          "Requests answered from an earlier request with the same client token.", ("rpc",))


def watch_sender(sender: Any) -> None:
    """Export a CastSender's queue depth and replays."""
    CAST_QUEUE.labels(sender.name).set_function(lambda: sender.unacked)
    CAST_REPLAYS.labels(sender.name).set_function(lambda: sender.replays)


def watch_receiver(receiver: Any) -> None:
    CASTS_APPLIED.labels(receiver.name).set_function(lambda: receiver.applied)
    CASTS_DUPLICATE.labels(receiver.name).set_function(lambda: receiver.duplicates)
    CASTS_FAILED.labels(receiver.name).set_function(lambda: receiver.failed)
    CASTS_INFLIGHT.labels(receiver.name).set_function(lambda: receiver.inflight)


def serve_http(port: int, addr: str = "127.0.0.1") -> int:
    """Start the /metrics HTTP endpoint; returns the bound port (0: disabled)."""
    if port <= 0:
        return 0
    server, _thread = start_http_server(port, addr=addr)
    return int(server.server_port)


def _split(method: str) -> tuple[str, str]:
    _, service, name = method.split("/", 2) if method.count("/") >= 2 else ("", "unknown", method)
    return service, name


def _code_name(context: Any, default: str) -> str:
    code = context.code() if hasattr(context, "code") else None
    if code is None:
        return default
    if isinstance(code, grpc.StatusCode):
        return code.name
    for sc in grpc.StatusCode:
        if sc.value[0] == code:
            return sc.name
    return default


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every RPC (unary and streaming) without touching the servicers."""

    async def intercept_service(self, continuation: Callable[..., Any], details: Any) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        service, method = _split(details.method)
        if handler.unary_unary:
            kind, fn = "unary", handler.unary_unary
        elif handler.unary_stream:
            kind, fn = "server_stream", handler.unary_stream
        elif handler.stream_unary:
            kind, fn = "client_stream", handler.stream_unary
        else:
            kind, fn = "bidi_stream", handler.stream_stream
        labels = (kind, service, method)

        def done(context: Any, start: float, failed: bool) -> None:
            GRPC_HANDLED.labels(*labels, _code_name(context, "UNKNOWN" if failed else "OK")).inc()
            GRPC_SECONDS.labels(*labels).observe(time.perf_counter() - start)

        async def counted_requests(requests: Any) -> Any:
            async for r in requests:
                GRPC_MSG_RECEIVED.labels(*labels).inc()
                yield r

        if kind in ("unary", "client_stream"):
            async def unary_response(request: Any, context: Any) -> Any:
                GRPC_STARTED.labels(*labels).inc()
                start, failed = time.perf_counter(), True
                try:
                    arg = counted_requests(request) if kind == "client_stream" else request
                    resp = await fn(arg, context)
                    failed = False
                    return resp
                finally:
                    done(context, start, failed)

            behavior = unary_response
        else:
            async def stream_response(request: Any, context: Any) -> Any:
                GRPC_STARTED.labels(*labels).inc()
                start, failed = time.perf_counter(), True
                try:
                    arg = counted_requests(request) if kind == "bidi_stream" else request
                    async for item in fn(arg, context):
                        GRPC_MSG_SENT.labels(*labels).inc()
                        yield item
                    failed = False
                finally:
                    done(context, start, failed)

            behavior = stream_response

        factory = {
            "unary": grpc.unary_unary_rpc_method_handler,
            "server_stream": grpc.unary_stream_rpc_method_handler,
            "client_stream": grpc.stream_unary_rpc_method_handler,
            "bidi_stream": grpc.stream_stream_rpc_method_handler,
        }[kind]
        return factory(behavior, request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)
