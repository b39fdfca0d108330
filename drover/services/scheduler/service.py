"""SchedulerService: host reports in, selections (with claims and explanations) out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import defaultdict
from typing import Any

import grpc
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from drover import scheduler_core as sc
from drover.config import DroverConfig
from drover.services.common import metrics, runtime, states
from drover.services.common.errors import ApiError, guarded, invalid_argument
from drover.services.scheduler import convert
from drover.store import db
from drover.store import models as m
from drover.v1 import scheduler_pb2, scheduler_pb2_grpc, types_pb2

log = logging.getLogger(__name__)


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServiceServicer):
    def __init__(self, cfg: DroverConfig, sessions: sessionmaker[Session] | None) -> None:
        self.cfg = cfg.scheduler
        self.table = sc.HostTable(convert.core_config(cfg.scheduler))
        self.agent_of: dict[str, str] = {}
        self.last_seen: dict[str, float] = {}
        self._down: set[str] = set()
        # Allocations of existing instances, applied when their host first reports.
        self._pending_claims: dict[str, list[tuple[str, int, int, int]]] = defaultdict(list)
        metrics.SCHEDULER_HOSTS.labels("up").set_function(lambda: len(self.table) - len(self._down))
        metrics.SCHEDULER_HOSTS.labels("down").set_function(lambda: len(self._down))
        if sessions is not None:
            self._load_allocations(sessions)

    def _load_allocations(self, sessions: sessionmaker[Session]) -> None:
        """Rebuild claims from the store (Placement's allocations survive a scheduler restart)."""
        with sessions() as s:
            rows = s.execute(
                select(m.Instance.id, m.Instance.host, m.Instance.vcpus, m.Instance.memory_mb,
                       m.Instance.root_gb, m.Instance.ephemeral_gb, m.Instance.swap_mb)
                .where(m.Instance.deleted.is_(False), m.Instance.host.is_not(None))
                .where(m.Instance.vm_state != states.DELETED)
            ).all()
        for iid, host, vcpus, mem, root, eph, swap in rows:
            if host is None:
                continue
            disk = root + eph + math.ceil(swap / 1024)
            self._pending_claims[host].append((iid, vcpus, mem, disk))
        if rows:
            log.info("restoring %d allocations from the store", len(rows))

    # ---- RPCs ------------------------------------------------------------------

    @staticmethod
    def _core_spec(spec: scheduler_pb2.RequestSpec) -> Any:
        """The core's RequestSpec; INVALID_ARGUMENT for what the core rejects (negative or
        overflowing amounts, too many instances) instead of letting it wrap or escape."""
        if not spec.instance_ids:
            raise invalid_argument([("spec.instance_ids", "at least one instance id is required")])
        try:
            return convert.request_spec(spec)
        except ValueError as exc:
            raise invalid_argument([("spec", str(exc))]) from None

    def _selection(self, sel: Any) -> scheduler_pb2.Selection:
        return scheduler_pb2.Selection(
            instance_id=sel.instance_id,
            host=sel.host,
            node=sel.host,
            agent_address=self.agent_of.get(sel.host, ""),
            alternate_hosts=list(sel.alternate_hosts),
        )

    @staticmethod
    def _observe(expl: Any) -> None:
        metrics.SELECT_HOSTS.observe(expl.hosts_total)
        for r in expl.rejections:
            if r.rejected:
                metrics.HOSTS_REJECTED.labels(r.filter).inc(r.rejected)

    def _select(self, request: scheduler_pb2.SelectDestinationsRequest) -> scheduler_pb2.SelectDestinationsResponse:
        """One select, claimed; ApiError (FAILED_PRECONDITION + Explanation) when no host fits."""
        spec = self._core_spec(request.spec)
        start = time.perf_counter()
        try:
            res = self.table.select(spec)
        except ValueError as exc:  # the claims would overflow a host's usage
            raise invalid_argument([("spec", str(exc))]) from None
        except sc.NoValidHost as exc:
            metrics.SELECT_SECONDS.observe(time.perf_counter() - start)
            metrics.NO_VALID_HOST.inc()
            self._observe(exc.explanation)
            expl = convert.explanation(exc.explanation)
            raise ApiError(grpc.StatusCode.FAILED_PRECONDITION, expl.summary, [expl]) from None
        metrics.SELECT_SECONDS.observe(time.perf_counter() - start)
        self._observe(res.explanation)
        out = scheduler_pb2.SelectDestinationsResponse(selections=[self._selection(s) for s in res.selections])
        if request.explain:  # converting it costs more than the select; only when asked
            out.explanation.CopyFrom(convert.explanation(res.explanation))
        return out

    @guarded
    async def SelectDestinations(
        self, request: scheduler_pb2.SelectDestinationsRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.SelectDestinationsResponse:
        return self._select(request)

    @guarded
    async def SelectDestinationsBatch(
        self, request: scheduler_pb2.SelectDestinationsBatchRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.SelectDestinationsBatchResponse:
        out = scheduler_pb2.SelectDestinationsBatchResponse()
        for one in request.requests:
            result = out.results.add()
            try:
                resp = self._select(one)
            except ApiError as err:
                result.code, result.message = err.code.value[0], err.message
                for detail in err.details:
                    if isinstance(detail, types_pb2.Explanation):
                        result.explanation.CopyFrom(detail)
                continue
            result.selections.extend(resp.selections)
            if resp.HasField("explanation"):
                result.explanation.CopyFrom(resp.explanation)
        return out

    @guarded
    async def ExplainSelection(
        self, request: scheduler_pb2.ExplainSelectionRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.ExplainSelectionResponse:
        res = self.table.explain(self._core_spec(request.spec))
        return scheduler_pb2.ExplainSelectionResponse(
            explanation=convert.explanation(res.explanation),
            selections=[self._selection(s) for s in res.selections],
        )

    @guarded
    async def ReleaseClaims(
        self, request: scheduler_pb2.ReleaseClaimsRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.ReleaseClaimsResponse:
        released = sum(1 for iid in request.instance_ids if self.table.release(iid))
        return scheduler_pb2.ReleaseClaimsResponse(released=released)

    @guarded
    async def ReportHosts(
        self, request: scheduler_pb2.ReportHostsRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.ReportHostsResponse:
        now = time.monotonic()
        accepted = 0
        for n, r in enumerate(request.reports):
            if not r.host:
                continue
            try:
                if self.table.upsert_host(r.host, **convert.upsert_kwargs(r)):
                    accepted += 1
            except ValueError as exc:  # amounts out of the core's range; earlier reports stay
                raise invalid_argument([(f"reports[{n}]", str(exc))]) from None
            self.agent_of[r.host] = r.agent_address
            self.last_seen[r.host] = now
            self._down.discard(r.host)
            for iid, vcpus, mem, disk in self._pending_claims.pop(r.host, ()):
                try:
                    self.table.claim(iid, r.host, vcpus=vcpus, memory_mb=mem, disk_gb=disk)
                except ValueError as exc:
                    log.error("allocation of %s on %s not restored: %s", iid, r.host, exc)
        return scheduler_pb2.ReportHostsResponse(accepted=accepted)

    @guarded
    async def ListHosts(
        self, request: scheduler_pb2.SchedulerServiceListHostsRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.SchedulerServiceListHostsResponse:
        names = list(request.hosts) or None
        hosts = self.table.hosts(names, request.limit)
        return scheduler_pb2.SchedulerServiceListHostsResponse(
            hosts=[convert.host_state(h, self.agent_of.get(h.host, "")) for h in hosts], total=len(self.table)
        )

    # ---- liveness --------------------------------------------------------------

    def mark_stale_hosts_down(self, now: float | None = None) -> int:
        """A host that stopped reporting is down (ComputeFilter then rejects it)."""
        now = time.monotonic() if now is None else now
        cutoff = now - self.cfg.service_down_time
        newly = [h for h, seen in self.last_seen.items() if seen < cutoff and h not in self._down]
        for h in newly:
            self.table.set_up(h, False)
            self._down.add(h)
        if newly:
            log.warning("%d hosts stopped reporting and are down", len(newly))
        return len(newly)

    async def liveness_loop(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.cfg.service_down_time / 4))
            self.mark_stale_hosts_down()


async def serve(cfg: DroverConfig, *, ready: Any = None) -> None:
    engine = db.make_engine(cfg.db_url)
    servicer = SchedulerServicer(cfg, db.session_factory(engine))
    host = runtime.ServiceHost(
        cfg.scheduler.listen, [scheduler_pb2.DESCRIPTOR.services_by_name["SchedulerService"].full_name],
        metrics_port=cfg.scheduler.metrics_port,
    )
    host.add(scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server, servicer)
    tasks: list[asyncio.Task[None]] = []

    async def stopping() -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    try:
        await runtime.serve_until_signal(
            host, "scheduler", started=lambda: tasks.append(asyncio.create_task(servicer.liveness_loop())),
            stopping=stopping, ready=ready)
    finally:
        engine.dispose()


def main(cfg: DroverConfig) -> None:
    runtime.setup_logging(cfg.log_level)
    runtime.run(lambda: serve(cfg))
