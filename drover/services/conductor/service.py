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
from collections.abc import Iterable
from typing import Any

import grpc
from cachetools import TTLCache
from sqlalchemy import Connection, Table, func, select
from sqlalchemy.orm import Session, sessionmaker

from drover.config import DroverConfig
from drover.services.common import convert, metrics, request_spec, runtime, server_groups, states
from drover.services.common.casts import CastReceiver, CastSender
from drover.services.common.group_commit import GroupCommit
from drover.services.conductor import ipam, statements, update_lanes
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


def _cast_keys(msg: conductor_pb2.ConductorServiceStreamCastsRequest) -> Iterable[str]:
    kind = msg.WhichOneof("cast")
    if kind == "build_instances":
        spec = msg.build_instances.spec
        # Builds into one server group run one after another: each sees where the last one landed.
        return [*spec.instance_ids, *([f"group:{spec.group_id}"] if spec.group_id else [])]
    if kind == "delete_instance":
        return [msg.delete_instance.instance_id]
    if kind == "instance_update":
        # Not keyed: the updates of an instance keep their order through its update lane and
        # the group commit's FIFO, and those that arrive together are written together.
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
        self.scheduler_channel = runtime.channel(cfg.conductor.scheduler)
        self.scheduler = scheduler_pb2_grpc.SchedulerServiceStub(self.scheduler_channel)
        self.selects = SelectBatcher(self.scheduler, cfg.conductor.select_timeout)
        self.receiver: CastReceiver[Any] = CastReceiver(
            "conductor", self.handle_cast, conductor_pb2.ConductorServiceStreamCastsResponse, keys=_cast_keys
        )
        self._compute_senders: dict[str, tuple[grpc.aio.Channel, CastSender[Any]]] = {}
        self._agent_of: dict[str, str] = {}
        self._lanes: dict[str, update_lanes.Lane] = {}
        self._watchers: set[asyncio.Queue[conductor_pb2.InstanceChange | None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
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
            chan = runtime.channel(address)
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
        async for resp in self.receiver.serve(request_iterator, context):
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

    async def _schedule_and_build(self, spec: scheduler_pb2.RequestSpec, request_id: str) -> None:
        ids = list(spec.instance_ids)
        try:
            resp = await self.selects.select(spec)
        except SelectError as exc:
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
        try:
            await self.scheduler.ReleaseClaims(scheduler_pb2.ReleaseClaimsRequest(instance_ids=ids), timeout=10)
        except grpc.aio.AioRpcError as exc:
            log.warning("could not release claims of %s: %s", ids, exc.code().name)

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
        if update_lanes.rides_in_lane(u):
            await self._update_in_lane(u)
            return
        self._lanes.pop(u.instance_id, None)  # later updates queue behind this one, not beside
        reschedule, release = await self.db.run(lambda s: self._apply_update(s, u))
        if release:
            await self._release([u.instance_id])
        if reschedule is not None:
            await self._schedule_and_build(*reschedule)

    async def _update_in_lane(self, u: conductor_pb2.InstanceUpdateCast) -> None:
        """Apply ``u`` together with the instance's other updates that arrive before the write."""
        lane = self._lanes.get(u.instance_id)
        if lane is not None and lane.join(u):
            await lane.done
            return
        lane = update_lanes.Lane(u.instance_id, [u], done=asyncio.get_running_loop().create_future())
        self._lanes[u.instance_id] = lane
        try:
            await self.db.run(lambda s: self._apply_lane(s, lane))
        except Exception as exc:
            if len(lane.updates) > 1:  # the riders fail with it (each is logged by the receiver)
                lane.done.set_exception(exc)
            raise
        else:
            lane.done.set_result(None)
        finally:
            if self._lanes.get(u.instance_id) is lane:
                del self._lanes[u.instance_id]

    def _apply_lane(self, s: Session, lane: update_lanes.Lane) -> None:
        updates = lane.take()
        if len({u.host for u in updates}) > 1:  # not one build attempt's: each on its own
            for u in updates:
                self._write_updates(s, [u])
        else:
            self._write_updates(s, updates)

    def _apply_update(self, s: Session, u: conductor_pb2.InstanceUpdateCast
                      ) -> tuple[tuple[scheduler_pb2.RequestSpec, str] | None, bool]:
        """Persist one compute update; returns (reschedule request, whether to release the claim).

        The common case (a build or power state moving on) is one Core statement on the
        instance plus its events; a failed build or a finished delete takes the ORM path.
        """
        if u.terminated or u.build_failed:
            return self._apply_update_orm(s, u)
        self._write_updates(s, [u])
        return None, False

    def _write_updates(self, s: Session, updates: list[conductor_pb2.InstanceUpdateCast]) -> None:
        """Plain state updates of one instance from one host, in order, as one UPDATE … RETURNING
        (the revision advances once per update), their events, and every state published."""
        iid, host, now = updates[0].instance_id, updates[0].host, utcnow()
        steps = [update_lanes.fields_of(u, now) for u in updates]
        merged: dict[str, Any] = {}
        for step in steps:
            merged.update(step)
        c = self._conn(s)
        before: dict[str, Any] = {}
        later = sorted(set().union(*steps[1:]) - steps[0].keys())
        if self._watchers and later:  # the intermediate states need what the steps overwrite
            row = c.execute(statements.instance_columns(tuple(later)), {"b_id": iid}).first()
            if row is None:
                return
            before = dict(row._mapping)
        fields = tuple(f for f in statements.UPDATABLE if f in merged)
        params = {"b_id": iid, "b_host": host, "b_now": now, "b_steps": len(updates),
                  **{f"b_{name}": value for name, value in merged.items()}}
        # Without a host the update is not tied to a build attempt; with one, it applies only there.
        inst = c.execute(statements.instance_update(fields, bool(host)), params).first()
        if inst is None:
            return
        self._record_events(c, iid, updates)
        if any(u.HasField("launched_at") for u in updates):
            self.recorder.finish_action(c, iid, "create")
        self._expire(s, iid)
        if not self._watchers:
            return
        views = update_lanes.intermediate_states(inst, before, steps) if len(updates) > 1 else [inst]
        for view, u in zip(views, updates, strict=True):
            self.publish(view, u.notification if u.HasField("notification") else None)

    def _record_events(self, c: Connection, iid: str, updates: list[conductor_pb2.InstanceUpdateCast]) -> None:
        """The updates' action events in order; one that starts and finishes among them is one row."""
        evs = [ev for u in updates for ev in u.events]
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

    def _apply_update_orm(self, s: Session, u: conductor_pb2.InstanceUpdateCast
                          ) -> tuple[tuple[scheduler_pb2.RequestSpec, str] | None, bool]:
        inst = s.get(m.Instance, u.instance_id)
        if inst is None or inst.deleted:
            return None, False
        if u.host and u.host != inst.host:
            return None, False  # late news from an earlier build attempt (or a replay of one)
        deleting = inst.task_state == states.DELETING
        self._record_events(self._conn(s), u.instance_id, [u])
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

    # ---- recovery: the store is the durable outbox -----------------------------------------

    async def recover_orphans(self, older_than: float) -> int:
        """Re-drive work whose cast may have died with a conductor.

        A build that holds a host but never reached the compute (still SCHEDULING)
        is cast again to that host; a delete still DELETING is driven again.
        Computes ignore builds they already have, and terminate is idempotent.
        """
        cutoff = utcnow() - dt.timedelta(seconds=older_than)
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
            unscheduled = s.execute(select(m.Instance.id).where(
                m.Instance.vm_state == states.BUILDING, m.Instance.task_state == states.SCHEDULING,
                m.Instance.host.is_(None), m.Instance.deleted.is_(False), m.Instance.updated_at <= cutoff,
            )).scalars().all()
            specs = []
            for iid in unscheduled:
                row = s.get(m.Instance, iid)
                flavor = s.get(m.Flavor, row.flavor_id) if row else None
                image = s.get(m.Image, row.image_id) if row else None
                if row is not None and flavor is not None and image is not None:
                    specs.append(self._spec_for(s, row, flavor, image,
                                                ignore_hosts=(row.scheduler_hints or {}).get("_tried_hosts", [])))
            deletes = s.execute(select(m.Instance.id).where(
                m.Instance.task_state == states.DELETING, m.Instance.deleted.is_(False),
                m.Instance.updated_at <= cutoff,
            )).scalars().all()
        for host, cast in casts:
            address = await self._agent_address(host)
            if address:
                self.compute(address).cast(build_and_run_instance=cast)
        for iid in deletes:
            await self.delete_instance(iid)
        for spec in specs:
            await self.build_instances(conductor_pb2.BuildInstancesCast(spec=spec))
        if casts or deletes or specs:
            log.info("re-drove %d builds, %d unscheduled builds and %d deletes", len(casts), len(specs),
                     len(deletes))
        return len(casts) + len(deletes) + len(specs)

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

    def refresh_instance_gauge(self) -> None:
        with self.sessions() as s:
            counts = dict(s.execute(
                select(m.Instance.vm_state, func.count()).where(m.Instance.deleted.is_(False))
                .group_by(m.Instance.vm_state)).all())
        for state in (states.BUILDING, states.ACTIVE, states.STOPPED, states.ERROR):
            metrics.INSTANCES.labels(state).set(counts.get(state, 0))

    async def gauge_loop(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                self.refresh_instance_gauge()
            await asyncio.sleep(5.0)

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self.sweep_loop())
        self._gauges = asyncio.get_running_loop().create_task(self.gauge_loop())

    async def stop(self) -> None:
        await self.db.stop()
        for task in (self._sweeper, self._gauges):
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
    host = runtime.ServiceHost(
        cfg.conductor.listen, [conductor_pb2.DESCRIPTOR.services_by_name["ConductorService"].full_name],
        metrics_port=cfg.conductor.metrics_port,
    )
    host.add(conductor_pb2_grpc.add_ConductorServiceServicer_to_server, conductor)
    try:
        await runtime.serve_until_signal(host, "conductor", started=conductor.start, stopping=conductor.stop,
                                         ready=ready)
    finally:
        engine.dispose()
        write_engine.dispose()


def main(cfg: DroverConfig) -> None:
    runtime.setup_logging(cfg.log_level)
    runtime.run(lambda: serve(cfg))
