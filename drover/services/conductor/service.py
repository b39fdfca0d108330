"""The conductor: Nova's ``ComputeTaskManager.build_instances`` and the instance-update path.

* ``build_instances`` (cast from the API): SelectDestinations (a call, with a
  deadline), then ``build_and_run_instance`` cast to each chosen compute.
* ``delete_instance`` (cast from the API): terminate on the compute, or a
  local delete when the instance never reached a host.
* ``instance_update`` (casts from computes): persist state, action events and
  faults; reschedule a failed build; publish every change to watchers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Coroutine, Iterable
from typing import Any

import grpc
from cachetools import TTLCache
from sqlalchemy import Connection, Table, func, select
from sqlalchemy.orm import Session, sessionmaker

from drover.config import DroverConfig
from drover.services.common import convert, metrics, peer_auth, request_spec, runtime, server_groups, states, tls
from drover.services.common.casts import CastReceiver, CastSender
from drover.services.common.group_commit import GroupCommit
from drover.services.common.watchdog import Watchdog
from drover.services.conductor import ipam, statements, steps
from drover.services.conductor.records import ActionRecorder
from drover.services.conductor.selects import SelectBatcher, SelectError
from drover.store import db
from drover.store import models as m
from drover.store.tables import FLAVORS, IMAGES
from drover.v1 import (
    compute_pb2,
    compute_pb2_grpc,
    conductor_pb2,
    conductor_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
    types_pb2,
)

log = logging.getLogger(__name__)
utcnow = m.utcnow
SERVICE_NAME = conductor_pb2.DESCRIPTOR.services_by_name["ConductorService"].full_name
# Re-driven builds and deletes run this many at a time (their selects share batch calls).
REDRIVE_BATCH = 256


def _cast_keys(msg: conductor_pb2.ConductorServiceStreamCastsRequest) -> Iterable[str]:
    kind = msg.WhichOneof("cast")
    if kind == "build_instances":
        spec = msg.build_instances.spec
        # Builds into one server group run one after another: each sees where the last one landed.
        return [*spec.instance_ids, *([f"group:{spec.group_id}"] if spec.group_id else [])]
    if kind == "delete_instance":
        return [msg.delete_instance.instance_id]
    if kind == "instance_update":
        # Not keyed: a compute's reports on an instance keep their order through the group
        # commit's FIFO (each report is queued before the receiver awaits anything).
        return []
    return []


def _notification(event_type: str, instance_id: str, host: str = "", **payload: str) -> types_pb2.Notification:
    n = types_pb2.Notification(event_type=event_type, instance_id=instance_id, host=host, payload=payload)
    n.timestamp.GetCurrentTime()
    return n


def _dt(stamp: Any) -> dt.datetime:
    return stamp.ToDatetime() if stamp.seconds or stamp.nanos else utcnow()


class Conductor(conductor_pb2_grpc.ConductorServiceServicer):
    def __init__(self, cfg: DroverConfig, sessions: sessionmaker[Session],
                 write_sessions: sessionmaker[Session] | None = None) -> None:
        self.cfg = cfg.conductor
        self.sessions = sessions
        self.transport = tls.transport(cfg, peer_auth.CONDUCTOR)
        self.scheduler_channel = runtime.channel(cfg.conductor.scheduler, peer_auth.SCHEDULER, self.transport)
        self.scheduler = scheduler_pb2_grpc.SchedulerServiceStub(self.scheduler_channel)
        self.selects = SelectBatcher(self.scheduler, cfg.conductor.select_timeout)
        self.receiver: CastReceiver[Any] = CastReceiver(
            "conductor", self.handle_cast, conductor_pb2.ConductorServiceStreamCastsResponse, keys=_cast_keys
        )
        self._compute_senders: dict[str, tuple[grpc.aio.Channel, CastSender[Any]]] = {}
        self._agent_of: dict[str, str] = {}
        self._watchers: set[asyncio.Queue[conductor_pb2.InstanceChange | None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._late_releases: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._gauges: asyncio.Task[None] | None = None
        self.recorder = ActionRecorder()
        self._catalog: TTLCache[tuple[str, str], Any] = TTLCache(maxsize=1024, ttl=5.0)
        self.db = GroupCommit(write_sessions or sessions, on_rollback=self.recorder.clear, threaded=True,
                              name="conductor")
        metrics.watch_receiver(self.receiver)

    # ---- plumbing -----------------------------------------------------------------

    def compute(self, address: str) -> CastSender[Any]:
        entry = self._compute_senders.get(address)
        if entry is None:
            chan = runtime.channel(address, peer_auth.COMPUTE, self.transport)
            stub = compute_pb2_grpc.ComputeServiceStub(chan)
            sender: CastSender[Any] = CastSender(
                f"conductor->{address}", lambda: stub.StreamCasts(), compute_pb2.ComputeServiceStreamCastsRequest
            )
            entry = self._compute_senders[address] = (chan, sender)
            metrics.watch_sender(sender)
        return entry[1]

    def publish(self, inst: Any, notification: types_pb2.Notification | None = None) -> None:
        """Tell watchers about this state of ``inst`` once the transaction commits."""
        if not self._watchers:
            return
        if isinstance(inst, m.Instance):  # an ORM object expires at commit: convert it while it is live
            change = conductor_pb2.InstanceChange(server=convert.server(inst), notification=notification)
            self.db.after_commit(lambda: self._deliver(change))
            return
        # A row (immutable): converted after the commit, so the write lock is not held for it.
        self.db.after_commit(
            lambda: self._deliver(conductor_pb2.InstanceChange(server=convert.server(inst), notification=notification)))

    def _deliver(self, change: conductor_pb2.InstanceChange) -> None:
        for q in list(self._watchers):
            try:
                q.put_nowait(change)
            except asyncio.QueueFull:
                # A watcher that cannot keep up is cut off; it resyncs from the store.
                self._watchers.discard(q)
                with contextlib.suppress(asyncio.QueueFull):
                    q.put_nowait(None)

    @staticmethod
    def _touch(inst: m.Instance) -> None:
        inst.revision += 1
        inst.updated_at = utcnow()

    # Action events go through the recorder's Core statements; ORM changes still pending in
    # the session are flushed first so the two never write the same row out of order.
    def _conn(self, s: Session) -> Connection:
        if s.new or s.dirty or s.deleted:
            s.flush()
        return s.connection()

    def _event_start(self, s: Session, inst_id: str, action: str, event: str, host: str = "",
                     when: dt.datetime | None = None) -> None:
        self.recorder.start(self._conn(s), inst_id, action, event, host, when)

    def _event_finish(self, s: Session, inst_id: str, action: str, event: str, result: str,
                      details: str = "", when: dt.datetime | None = None, host: str = "") -> None:
        self.recorder.finish(self._conn(s), inst_id, action, event, result, details, when, host)

    def _finish_action(self, s: Session, inst_id: str, action: str, message: str = "") -> None:
        self.recorder.finish_action(self._conn(s), inst_id, action, message)

    @staticmethod
    def _expire(s: Session, instance_id: str) -> None:
        """Drop the session's copy of an instance written by a Core statement."""
        obj = s.identity_map.get(s.identity_key(m.Instance, instance_id))  # type: ignore[arg-type]
        if obj is not None:
            s.expire(obj)

    # ---- casts ----------------------------------------------------------------------

    async def StreamCasts(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        peer = peer_auth.peer_of(context)
        # A compute updates only instances on its own hosts: the update must name one of them,
        # and the write applies only while the instance is on that host.
        admit = peer_auth.cast_gate(SERVICE_NAME, peer, {
            "instance_update": lambda m: (m.instance_update.host,),
            "guest_inventory": lambda m: m.guest_inventory.hosts,
        })
        async for resp in self.receiver.serve(request_iterator, context, admit=admit,
                                              peer=peer.key if peer else ""):
            yield resp

    async def WatchInstances(
        self, request: conductor_pb2.WatchInstancesRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        q: asyncio.Queue[conductor_pb2.InstanceChange | None] = asyncio.Queue(maxsize=100_000)
        self._watchers.add(q)
        wanted = set(request.instance_ids)
        try:
            while True:
                # One stream message per write, carrying everything queued meanwhile: under load a
                # write per change would fall behind (each costs a turn of this busy event loop).
                batch = [await q.get()]
                while not q.empty() and len(batch) < 512:
                    batch.append(q.get_nowait())
                changes = [c for c in batch if c is not None and (not wanted or c.server.id in wanted)]
                if changes:
                    yield conductor_pb2.WatchInstancesResponse(changes=changes)
                if None in batch:
                    return
        finally:
            self._watchers.discard(q)

    async def handle_cast(self, msg: conductor_pb2.ConductorServiceStreamCastsRequest) -> None:
        kind = msg.WhichOneof("cast")
        if kind == "build_instances":
            await self.build_instances(msg.build_instances)
        elif kind == "delete_instance":
            await self.delete_instance(msg.delete_instance.instance_id)
        elif kind == "instance_update":
            await self.instance_update(msg.instance_update)
        elif kind == "guest_inventory":
            await self.reconcile(msg.guest_inventory)

    # ---- build ----------------------------------------------------------------------

    async def build_instances(self, cast: conductor_pb2.BuildInstancesCast) -> None:
        ids = list(cast.spec.instance_ids)

        def start(s: Session) -> tuple[list[str], server_groups.Placement]:
            c = self._conn(s)
            rows = c.execute(statements.BUILD_CANDIDATES, {"b_ids": ids}).all()
            todo = []
            for r in rows:
                if r.deleted or r.vm_state != states.BUILDING or r.task_state != states.SCHEDULING or r.host:
                    continue
                if r.action_id is not None:
                    self.recorder.remember_action(r.id, "create", r.action_id, bool(r.has_events))
                self.recorder.start(c, r.id, "create", states.EV_SCHEDULE)
                todo.append(r.id)
            group = (
                server_groups.placement(c, cast.spec.group_id, todo)
                if cast.spec.group_id and todo
                else server_groups.Placement()
            )
            return todo, group

        todo, group = await self.db.run(start)
        if not todo:
            return  # a replay, or deleted before we got to it
        spec = scheduler_pb2.RequestSpec()
        spec.CopyFrom(cast.spec)
        del spec.instance_ids[:]
        spec.instance_ids.extend(todo)
        spec.group_policy = group.policy
        del spec.group_hosts[:]
        spec.group_hosts.extend(group.hosts)
        spec.group_max_server_per_host = group.max_server_per_host
        await self._schedule_and_build(spec, cast.request_id)

    async def _select(self, spec: scheduler_pb2.RequestSpec) -> scheduler_pb2.SelectDestinationsResponse:
        """Hosts for ``spec``. A scheduler that is away or still warming up (UNAVAILABLE) is asked again
        with backoff for as long as a build may take: that is no reason to fail a build."""
        delay, give_up = 0.2, asyncio.get_running_loop().time() + self.cfg.build_timeout
        while True:
            try:
                return await self.selects.select(spec)
            except SelectError as exc:
                if (exc.code != grpc.StatusCode.UNAVAILABLE or self._stopping
                        or asyncio.get_running_loop().time() + delay > give_up):
                    raise
                log.info("scheduler unavailable (%s); selecting again in %.1f s", exc.message, delay)
                metrics.SELECT_RETRIES.inc()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _schedule_and_build(self, spec: scheduler_pb2.RequestSpec, request_id: str) -> None:
        ids = list(spec.instance_ids)
        try:
            resp = await self._select(spec)
        except SelectError as exc:
            if self._stopping:  # our own shutdown is no reason to fail a build: the next conductor re-drives it
                log.info("conductor stopping: %d builds left to the next conductor", len(ids))
                return
            expl = exc.explanation
            if exc.code == grpc.StatusCode.FAILED_PRECONDITION and expl is not None:
                reason = f"No valid host was found. {expl.summary}"
            else:
                reason = f"Scheduling failed: {exc.code.name}: {exc.message}"
            await self.db.run(lambda s: self._fail_build(s, ids, reason, explanation=expl, event=states.EV_SCHEDULE))
            return
        released: list[str] = []
        for sel in resp.selections:
            if sel.agent_address:
                self._agent_of[sel.host] = sel.agent_address
            prepared = await self.db.run(lambda s, sel=sel: self._prepare_build(s, sel))  # type: ignore[misc]
            if prepared is None:
                released.append(sel.instance_id)
                continue
            self.compute(sel.agent_address).cast(build_and_run_instance=self._build_cast(*prepared, request_id))
        if released:
            await self._release(released)

    def _prepare_build(self, s: Session, sel: scheduler_pb2.Selection) -> tuple[Any, Any, Any] | None:
        """Record the chosen host and networking: (instance, flavor, image) rows to build from;
        None when the instance went away meanwhile."""
        c = self._conn(s)
        row = c.execute(statements.INSTANCE_FOR_UPDATE, {"b_id": sel.instance_id}).first()
        if row is None or row.deleted:
            return None
        if row.task_state == states.DELETING:
            self._local_delete(s, self._orm(s, row.id))
            return None
        flavor = self._catalog_row(c, FLAVORS, row.flavor_id)
        image = self._catalog_row(c, IMAGES, row.image_id)
        if flavor is None or image is None:
            self._set_error(s, self._orm(s, row.id), "flavor or image was deleted during the build",
                            states.EV_SCHEDULE)
            return None
        try:
            addresses = self._allocate_networks(c, row)
        except ipam.AllocationError as exc:
            ipam.release(s, row.id)  # what an earlier network of the same instance got
            self._set_error(s, self._orm(s, row.id), str(exc), states.EV_SCHEDULE)
            return None
        self.recorder.finish(c, row.id, "create", states.EV_SCHEDULE, states.EV_RESULT_OK)
        inst = c.execute(statements.ASSIGN_HOST, {"b_id": row.id, "b_host": sel.host, "b_node": sel.node or sel.host,
                                                  "b_addresses": addresses, "b_now": utcnow()}).one()
        self._expire(s, row.id)
        self.publish(inst)
        return inst, flavor, image

    def _catalog_row(self, c: Connection, table: Table, ident: str) -> Any:
        """A flavor or image row; kept a few seconds, as every build of a burst asks for the same ones."""
        key = (table.name, ident)
        row = self._catalog.get(key)
        if row is None:
            row = c.execute(select(table).where(table.c.id == ident)).first()
            if row is not None:
                self._catalog[key] = row
        return row

    def _orm(self, s: Session, instance_id: str) -> m.Instance:
        """The instance as an ORM object, for the rare paths (errors, deletes) that still use them."""
        inst = s.get(m.Instance, instance_id, populate_existing=True)
        assert inst is not None, instance_id
        return inst

    @staticmethod
    def _build_cast(inst: Any, flavor: Any, image: Any, request_id: str) -> compute_pb2.BuildAndRunInstanceCast:
        spec = compute_pb2.InstanceSpec(
            id=inst.id,
            name=inst.name,
            project_id=inst.project_id,
            flavor=convert.flavor(flavor),
            image=convert.image(image),
            addresses=[types_pb2.ServerAddress(**a) for a in inst.addresses or []],
            metadata={str(k): str(v) for k, v in (inst.metadata_ or {}).items()},
        )
        return compute_pb2.BuildAndRunInstanceCast(instance=spec, host=inst.host or "", node=inst.node or "",
                                                   request_id=request_id)

    @staticmethod
    def _allocate_networks(c: Connection, inst: Any) -> list[dict[str, Any]]:
        if inst.addresses:
            return list(inst.addresses)  # a reschedule keeps its addresses
        out = []
        for req in inst.requested_networks or []:
            found = ipam.allocate(c, req["uuid"], inst.id, req.get("fixed_ip", ""))
            if found is None:
                continue  # the network was deleted meanwhile
            net, addr = found
            out.append({"network_id": net.id, "network_name": net.name, "address": addr,
                        "version": 6 if ":" in addr else 4})
        return out

    def _set_error(self, s: Session, inst: m.Instance, reason: str, event: str,
                   explanation: types_pb2.Explanation | None = None) -> None:
        inst.vm_state = states.ERROR
        inst.task_state = None
        inst.fault_code = 500
        inst.fault_message = reason
        inst.fault_at = utcnow()
        if explanation is not None:
            inst.scheduler_explanation = convert.explanation_to_json(explanation)
        self._event_finish(s, inst.id, "create", event, states.EV_RESULT_ERROR, reason)
        self._finish_action(s, inst.id, "create", reason)
        self._touch(inst)
        self.publish(inst, _notification(states.CREATE_ERROR, inst.id, inst.host or "", reason=reason))

    def _fail_build(self, s: Session, ids: list[str], reason: str, *,
                    explanation: types_pb2.Explanation | None, event: str) -> None:
        for inst in s.execute(select(m.Instance).where(m.Instance.id.in_(ids))).scalars():
            if inst.deleted:
                continue
            if inst.task_state == states.DELETING:
                self._local_delete(s, inst)
                continue
            self._set_error(s, inst, reason, event, explanation)

    async def _release(self, ids: list[str]) -> None:
        """Release the claims of ``ids``; one that cannot land now (the scheduler is away) is retried
        in the background until it does, so a deleted server's claim never outlives it."""
        try:
            await self.scheduler.ReleaseClaims(scheduler_pb2.ReleaseClaimsRequest(instance_ids=ids), timeout=10)
        except grpc.aio.AioRpcError as exc:
            log.warning("could not release claims of %s now (%s); retrying", ids, exc.code().name)
            task = asyncio.get_running_loop().create_task(self._release_later(ids))
            self._late_releases.add(task)
            task.add_done_callback(self._late_releases.discard)

    async def _release_later(self, ids: list[str]) -> None:
        delay = 0.2
        while True:
            await asyncio.sleep(delay)
            try:
                await self.scheduler.ReleaseClaims(scheduler_pb2.ReleaseClaimsRequest(instance_ids=ids), timeout=10)
            except grpc.aio.AioRpcError:
                delay = min(delay * 2, 5.0)
                continue
            metrics.RELEASES_LATE.inc(len(ids))
            log.info("released the claims of %d instances late", len(ids))
            return

    # ---- delete ---------------------------------------------------------------------

    def _local_delete(self, s: Session, inst: m.Instance) -> None:
        """Delete an instance that has no guest anywhere (never scheduled, or its host is gone)."""
        self.publish(inst, _notification(states.DELETE_START, inst.id, inst.host or ""))
        self._finish_deleted(s, inst, states.EV_LOCAL_DELETE)

    def _finish_deleted(self, s: Session, inst: m.Instance, event: str | None) -> None:
        now = utcnow()
        if event:
            self._event_start(s, inst.id, "delete", event, when=now)
            self._event_finish(s, inst.id, "delete", event, states.EV_RESULT_OK, when=now)
        self._finish_action(s, inst.id, "delete")
        self._finish_action(s, inst.id, "create", "deleted during build")
        ipam.release(s, inst.id)
        inst.vm_state = states.DELETED
        inst.task_state = None
        inst.power_state = 0
        inst.deleted = True
        inst.terminated_at = now
        self._touch(inst)
        self.recorder.forget(inst.id)
        self.publish(inst, _notification(states.DELETE_END, inst.id, inst.host or ""))

    async def _agent_address(self, host: str) -> str:
        addr = self._agent_of.get(host)
        if addr:
            return addr
        try:
            resp = await self.scheduler.ListHosts(
                scheduler_pb2.SchedulerServiceListHostsRequest(hosts=[host]), timeout=5
            )
        except grpc.aio.AioRpcError:
            return ""
        for h in resp.hosts:
            if h.host == host and h.agent_address:
                self._agent_of[host] = h.agent_address
                return h.agent_address
        return ""

    async def delete_instance(self, instance_id: str) -> None:
        def start(s: Session) -> str | None:
            inst = s.get(m.Instance, instance_id)
            if inst is None or inst.deleted:
                return None
            if not inst.host:
                self._local_delete(s, inst)
                return None
            return inst.host

        def local(s: Session) -> None:
            inst = s.get(m.Instance, instance_id)
            if inst is not None and not inst.deleted:
                self._local_delete(s, inst)

        host = await self.db.run(start)
        if host is None:
            return
        address = await self._agent_address(host)
        if not address:
            # Nova deletes locally when the compute service is gone.
            await self.db.run(local)
            await self._release([instance_id])
            return
        self.compute(address).cast(
            terminate_instance=compute_pb2.TerminateInstanceCast(instance_id=instance_id, host=host)
        )

    # ---- updates from computes -------------------------------------------------------

    async def instance_update(self, u: conductor_pb2.InstanceUpdateCast) -> None:
        reschedule, release = await self.db.run(lambda s: self._apply_report(s, u))
        if release:
            await self._release([u.instance_id])
        if reschedule is not None:
            metrics.RESCHEDULES.inc()
            await self._schedule_and_build(*reschedule)

    def _apply_report(self, s: Session, u: conductor_pb2.InstanceUpdateCast
                      ) -> tuple[tuple[scheduler_pb2.RequestSpec, str] | None, bool]:
        """Persist a compute's report, step by step in order; returns (reschedule request, whether
        to release the claim). Each run of plain steps is one Core statement plus its events; a
        failed build or a finished delete takes the ORM path on its own."""
        reschedule, release = None, False
        run: list[conductor_pb2.InstanceStep] = []
        for step in u.steps:
            if steps.is_plain(step):
                run.append(step)
                continue
            if run:
                self._write_steps(s, u.instance_id, u.host, run)
                run = []
            again, freed = self._apply_decisive_step(s, u.instance_id, u.host, step)
            reschedule, release = again or reschedule, freed or release
        if run:
            self._write_steps(s, u.instance_id, u.host, run)
        return reschedule, release

    def _write_steps(self, s: Session, iid: str, host: str, run: list[conductor_pb2.InstanceStep]) -> None:
        """Plain steps of one instance on one host, in order, as one UPDATE … RETURNING (the
        revision advances once per step), their events, and the state after each step published."""
        now = utcnow()
        changes = [steps.fields_of(step, now) for step in run]
        merged: dict[str, Any] = {}
        for change in changes:
            merged.update(change)
        c = self._conn(s)
        before: dict[str, Any] = {}
        later = sorted(set().union(*changes[1:]) - changes[0].keys())
        if self._watchers and later:  # the intermediate states need what the steps overwrite
            row = c.execute(statements.instance_columns(tuple(later)), {"b_id": iid}).first()
            if row is None:
                return
            before = dict(row._mapping)
        fields = tuple(f for f in statements.UPDATABLE if f in merged)
        params = {"b_id": iid, "b_host": host, "b_now": now, "b_steps": len(run),
                  **{f"b_{name}": value for name, value in merged.items()}}
        # Without a host the report is not tied to a build attempt; with one, it applies only there.
        inst = c.execute(statements.instance_update(fields, bool(host)), params).first()
        if inst is None:
            return
        self._record_events(c, iid, run)
        if any(step.HasField("launched_at") for step in run):
            self.recorder.finish_action(c, iid, "create")
        self._expire(s, iid)
        if not self._watchers:
            return
        views = steps.intermediate_states(inst, before, changes) if len(run) > 1 else [inst]
        for view, step in zip(views, run, strict=True):
            self.publish(view, step.notification if step.HasField("notification") else None)

    def _record_events(self, c: Connection, iid: str, run: list[conductor_pb2.InstanceStep]) -> None:
        """The steps' action events in order; one that starts and finishes among them is one row."""
        evs = [ev for step in run for ev in step.events]
        finishes = {(ev.action or "create", ev.event): ev for ev in evs if ev.HasField("finish_time")}
        merged = set()
        for ev in evs:
            key = (ev.action or "create", ev.event)
            if ev.HasField("finish_time"):
                if key not in merged:
                    self.recorder.finish(c, iid, key[0], ev.event, ev.result, ev.details, _dt(ev.finish_time),
                                         host=ev.host)
            elif key in finishes and key not in merged:
                done = finishes[key]
                self.recorder.record(c, iid, key[0], ev.event, start=_dt(ev.start_time), finish=_dt(done.finish_time),
                                     result=done.result, details=done.details, host=ev.host)
                merged.add(key)
            else:
                self.recorder.start(c, iid, key[0], ev.event, ev.host, _dt(ev.start_time))

    def _apply_decisive_step(self, s: Session, iid: str, host: str, u: conductor_pb2.InstanceStep
                             ) -> tuple[tuple[scheduler_pb2.RequestSpec, str] | None, bool]:
        """A failed build (reschedule or ERROR) or a finished delete."""
        inst = s.get(m.Instance, iid)
        if inst is None or inst.deleted:
            return None, False
        if host and host != inst.host:
            return None, False  # late news from an earlier build attempt (or a replay of one)
        deleting = inst.task_state == states.DELETING
        self._record_events(self._conn(s), iid, [u])
        if u.terminated:
            self._finish_deleted(s, inst, None)
            return None, True
        reschedule = None
        release = False
        if not deleting:
            if u.HasField("vm_state"):
                inst.vm_state = states.VM_STATE_FROM_PB[u.vm_state]
            if u.HasField("task_state"):
                inst.task_state = states.TASK_STATE_FROM_PB[u.task_state]
        if u.HasField("power_state"):
            inst.power_state = int(u.power_state)
        if u.HasField("launched_at"):
            inst.launched_at = u.launched_at.ToDatetime()
            self._finish_action(s, inst.id, "create")
        if u.HasField("fault") and u.fault.message:
            inst.fault_code = u.fault.code or 500
            inst.fault_message = u.fault.message
            inst.fault_details = u.fault.details
            inst.fault_at = utcnow()
        if u.build_failed and not deleting:
            reschedule = self._after_build_failure(s, inst, u.fault.message)
            release = True
        self._touch(inst)
        self.publish(inst, u.notification if u.HasField("notification") else None)
        return reschedule, release

    def _after_build_failure(self, s: Session, inst: m.Instance, reason: str
                             ) -> tuple[scheduler_pb2.RequestSpec, str] | None:
        """Reschedule to another host while attempts remain (Nova's retry), else ERROR."""
        tried = list((inst.scheduler_hints or {}).get("_tried_hosts", []))
        if inst.host:
            tried.append(inst.host)
        flavor = s.get(m.Flavor, inst.flavor_id)
        image = s.get(m.Image, inst.image_id)
        if inst.build_attempts >= self.cfg.max_attempts or flavor is None or image is None:
            inst.vm_state = states.ERROR
            inst.task_state = None
            self._finish_action(s, inst.id, "create", reason)
            return None
        hints = dict(inst.scheduler_hints or {})
        hints["_tried_hosts"] = tried
        inst.scheduler_hints = hints
        inst.host = None
        inst.node = None
        inst.task_state = states.SCHEDULING
        inst.vm_state = states.BUILDING
        self._event_start(s, inst.id, "create", states.EV_SCHEDULE)
        spec = self._spec_for(s, inst, flavor, image, ignore_hosts=tried)
        return spec, ""

    def _spec_for(self, s: Session, inst: m.Instance, flavor: m.Flavor, image: m.Image, *,
                  ignore_hosts: list[str]) -> scheduler_pb2.RequestSpec:
        """The request spec to (re)schedule one instance, with its hints and server group as they are now."""
        hints = inst.scheduler_hints or {}
        c = self._conn(s)
        group_id = server_groups.group_of(c, inst.id) or ""
        group = server_groups.placement(c, group_id, [inst.id]) if group_id else server_groups.Placement()
        spec = request_spec.build([inst], flavor, image, ignore_hosts=ignore_hosts,
                                  same_host=hints.get("same_host", []),
                                  different_host=hints.get("different_host", []),
                                  group_id=group_id, group_policy=group.policy, group_hosts=group.hosts)
        spec.group_max_server_per_host = group.max_server_per_host
        return spec

    # ---- reconciliation: the store against what a compute's driver has ------------------------

    async def reconcile(self, inv: conductor_pb2.GuestInventoryCast) -> None:
        """Nova's _sync_power_states and _cleanup_running_deleted_instances, judged here where the
        store is: a settled server on the agent's hosts without a guest goes to ERROR with a fault
        (and its claim is released); a guest of a deleted server is terminated; a guest the store
        does not know is reported."""
        judged = await asyncio.to_thread(self._judge_inventory, inv)  # a scan: off the event loop
        missing, deleted, unknown = judged
        if missing:
            taken = inv.taken_at.ToDatetime()
            lost = await self.db.run(lambda s: self._mark_guests_missing(s, missing, taken))
            if lost:
                log.error("reconciliation: %d servers on %s have no guest there any more; now ERROR",
                          len(lost), inv.agent_address)
                metrics.RECONCILE_FIXES.labels("guest_missing").inc(len(lost))
                await self._release(lost)
        for iid, host in deleted:
            log.warning("reconciliation: guest of deleted server %s still on %s; terminating it", iid, host)
            metrics.RECONCILE_FIXES.labels("deleted_guest_reaped").inc()
            self.compute(inv.agent_address).cast(
                terminate_instance=compute_pb2.TerminateInstanceCast(instance_id=iid, host=host))
        if unknown:
            log.warning("reconciliation: %d guests on %s are unknown to the store: %s", len(unknown),
                        inv.agent_address, ", ".join(sorted(unknown)[:10]))
            metrics.RECONCILE_FIXES.labels("unknown_guest").inc(len(unknown))

    def _judge_inventory(self, inv: conductor_pb2.GuestInventoryCast
                         ) -> tuple[list[str], list[tuple[str, str]], list[str]]:
        hosts, have = set(inv.hosts), set(inv.instance_ids)
        taken = inv.taken_at.ToDatetime()
        with self.sessions() as s:
            settled = s.execute(select(m.Instance.id, m.Instance.host).where(
                m.Instance.deleted.is_(False), m.Instance.host.is_not(None), m.Instance.task_state.is_(None),
                m.Instance.vm_state.in_((states.ACTIVE, states.STOPPED)), m.Instance.updated_at < taken)).all()
            missing = [iid for iid, host in settled if host in hosts and iid not in have]
            known: dict[str, tuple[bool, str]] = {}
            ids = sorted(have)
            for i in range(0, len(ids), 500):
                for iid, gone, host in s.execute(select(m.Instance.id, m.Instance.deleted, m.Instance.host)
                                                 .where(m.Instance.id.in_(ids[i:i + 500]))):
                    known[iid] = (bool(gone), host or "")
        reap = [(iid, host) for iid, (gone, host) in known.items() if gone]
        return missing, reap, [iid for iid in ids if iid not in known]

    def _mark_guests_missing(self, s: Session, ids: list[str], taken: dt.datetime) -> list[str]:
        lost = []
        for inst in s.execute(select(m.Instance).where(m.Instance.id.in_(ids))).scalars():
            # Judged on a read: only what is still settled and unchanged since the driver was asked.
            if inst.deleted or inst.task_state is not None or inst.vm_state not in (states.ACTIVE, states.STOPPED) \
                    or inst.updated_at >= taken:
                continue
            reason = f"the guest of instance {inst.id} is gone from host {inst.host} (found by reconciliation)"
            inst.vm_state = states.ERROR
            inst.power_state = 0
            inst.fault_code = 500
            inst.fault_message = reason
            inst.fault_at = utcnow()
            self._touch(inst)
            # In the server's history (`drover server event list`), as Nova records its periodic fixes.
            now = utcnow()
            action = m.InstanceAction(instance_id=inst.id, action="reconcile", project_id=inst.project_id,
                                      start_time=now, finish_time=now, message=reason)
            action.events.append(m.InstanceActionEvent(event=states.EV_RECONCILE, start_time=now, finish_time=now,
                                                       result=states.EV_RESULT_ERROR, details=reason,
                                                       host=inst.host or ""))
            s.add(action)
            self.publish(inst, _notification(states.GUEST_MISSING, inst.id, inst.host or "", reason=reason))
            lost.append(inst.id)
        return lost

    # ---- recovery: the store is the durable outbox -----------------------------------------

    async def recover_orphans(self, older_than: float) -> int:
        """Re-drive work whose cast may have died with a conductor.

        A build that holds a host but never reached the compute (still SCHEDULING)
        is cast again to that host; a delete still DELETING is driven again.
        Computes ignore builds they already have, and terminate is idempotent.
        The backlog is read in a worker thread and driven in batches that run side by side,
        so a conductor restarting with a large backlog serves (and answers health) at once.
        """
        cutoff = utcnow() - dt.timedelta(seconds=older_than)
        casts, specs, deletes = await asyncio.to_thread(self._orphans, cutoff)
        for host, cast in casts:
            address = await self._agent_address(host)
            if address:
                self.compute(address).cast(build_and_run_instance=cast)
        await self._in_batches([self.delete_instance(iid) for iid in deletes])
        await self._in_batches([self.build_instances(conductor_pb2.BuildInstancesCast(spec=spec)) for spec in specs])
        metrics.REDRIVES.labels("build").inc(len(casts))
        metrics.REDRIVES.labels("unscheduled").inc(len(specs))
        metrics.REDRIVES.labels("delete").inc(len(deletes))
        if casts or deletes or specs:
            log.info("re-drove %d builds, %d unscheduled builds and %d deletes", len(casts), len(specs),
                     len(deletes))
        return len(casts) + len(deletes) + len(specs)

    @staticmethod
    async def _in_batches(work: list[Coroutine[Any, Any, None]], size: int = REDRIVE_BATCH) -> None:
        for i in range(0, len(work), size):
            results = await asyncio.gather(*work[i:i + size], return_exceptions=True)
            for r in results:
                if isinstance(r, Exception):
                    log.warning("re-drive failed: %r", r)

    def _orphans(self, cutoff: dt.datetime) -> tuple[list[tuple[str, compute_pb2.BuildAndRunInstanceCast]],
                                                     list[scheduler_pb2.RequestSpec], list[str]]:
        """What a dead conductor left half-done (read in a worker thread)."""
        with self.sessions() as s:
            builds = s.execute(select(m.Instance).where(
                m.Instance.vm_state == states.BUILDING, m.Instance.task_state == states.SCHEDULING,
                m.Instance.host.is_not(None), m.Instance.deleted.is_(False), m.Instance.updated_at <= cutoff,
            )).scalars().all()
            casts = []
            for inst in builds:
                flavor, image = s.get(m.Flavor, inst.flavor_id), s.get(m.Image, inst.image_id)
                if flavor is not None and image is not None:
                    casts.append((inst.host or "", self._build_cast(inst, flavor, image, "")))
            unscheduled = s.execute(select(m.Instance).where(
                m.Instance.vm_state == states.BUILDING, m.Instance.task_state == states.SCHEDULING,
                m.Instance.host.is_(None), m.Instance.deleted.is_(False), m.Instance.updated_at <= cutoff,
            )).scalars().all()
            specs = []
            for row in unscheduled:
                flavor, image = s.get(m.Flavor, row.flavor_id), s.get(m.Image, row.image_id)
                if flavor is not None and image is not None:
                    specs.append(self._spec_for(s, row, flavor, image,
                                                ignore_hosts=(row.scheduler_hints or {}).get("_tried_hosts", [])))
            deletes = list(s.execute(select(m.Instance.id).where(
                m.Instance.task_state == states.DELETING, m.Instance.deleted.is_(False),
                m.Instance.updated_at <= cutoff,
            )).scalars().all())
        return casts, specs, deletes

    # ---- stuck builds ------------------------------------------------------------------

    async def sweep_stuck_builds(self) -> int:
        """Builds with no progress for build_timeout go to ERROR (Nova's instance_build_timeout)."""
        return await self.db.run(self._sweep_stuck)

    def _sweep_stuck(self, s: Session) -> int:
        cutoff = utcnow() - dt.timedelta(seconds=self.cfg.build_timeout)
        stuck = s.execute(
            select(m.Instance).where(
                m.Instance.vm_state == states.BUILDING,
                m.Instance.deleted.is_(False),
                m.Instance.updated_at < cutoff,
            )
        ).scalars().all()
        for inst in stuck:
            self._set_error(s, inst, f"Build timed out after {self.cfg.build_timeout:.0f} s",
                            states.EV_BUILD if inst.host else states.EV_SCHEDULE)
        return len(stuck)

    async def sweep_loop(self) -> None:
        # At start nothing of ours is in flight: anything half-done was orphaned by a previous conductor.
        with contextlib.suppress(Exception):
            await self.recover_orphans(older_than=0.0)
        while True:
            await asyncio.sleep(max(1.0, min(30.0, self.cfg.build_timeout / 4)))
            try:
                await self.recover_orphans(older_than=self.cfg.orphan_timeout)
                if await self.sweep_stuck_builds():
                    log.warning("stuck builds moved to ERROR")
            except Exception:
                log.exception("sweep failed")

    def _instance_counts(self) -> dict[str, int]:
        with self.sessions() as s:
            return dict(s.execute(  # type: ignore[arg-type]
                select(m.Instance.vm_state, func.count()).where(m.Instance.deleted.is_(False))
                .group_by(m.Instance.vm_state)).all())

    async def refresh_instance_gauge(self) -> None:
        counts = await asyncio.to_thread(self._instance_counts)  # a scan: never on the event loop
        for state in (states.BUILDING, states.ACTIVE, states.STOPPED, states.ERROR):
            metrics.INSTANCES.labels(state).set(counts.get(state, 0))

    async def gauge_loop(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.refresh_instance_gauge()
            await asyncio.sleep(5.0)

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self.sweep_loop())
        self._gauges = asyncio.get_running_loop().create_task(self.gauge_loop())

    def supervise(self, watchdog: Watchdog) -> None:
        watchdog.watch("group-commit", lambda: self.db.task, self.db.start)
        watchdog.watch("sweeper", lambda: self._sweeper, self._restart_sweeper)
        watchdog.watch("gauges", lambda: self._gauges, self._restart_gauges)

    def _restart_sweeper(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self.sweep_loop())

    def _restart_gauges(self) -> None:
        self._gauges = asyncio.get_running_loop().create_task(self.gauge_loop())

    async def stop(self) -> None:
        self._stopping = True
        await self.db.stop()
        for task in (self._sweeper, self._gauges, *self._late_releases):
            if task:
                task.cancel()
        await self.receiver.drain(5.0)
        for chan, sender in self._compute_senders.values():
            await sender.close(drain_timeout=2.0)
            await chan.close()
        for q in list(self._watchers):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)
        await self.selects.close()
        await self.scheduler_channel.close()


async def serve(cfg: DroverConfig, *, ready: Any = None) -> None:
    engine = db.make_engine(cfg.db_url)
    write_engine = db.make_engine(cfg.db_url, for_writes=True)
    conductor = Conductor(cfg, db.session_factory(engine), db.session_factory(write_engine))
    host = runtime.internal_host(cfg.conductor, [SERVICE_NAME], conductor.transport)
    host.add(conductor_pb2_grpc.add_ConductorServiceServicer_to_server, conductor)
    conductor.supervise(host.watchdog)
    try:
        await runtime.serve_until_signal(host, "conductor", started=conductor.start, stopping=conductor.stop,
                                         ready=ready)
    finally:
        engine.dispose()
        write_engine.dispose()


def main(cfg: DroverConfig) -> None:
    runtime.setup_logging(cfg.log_level)
    runtime.run(lambda: serve(cfg))
