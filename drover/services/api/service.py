"""ApiService: validates, persists, casts and answers at once (nova-api + compute.API)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import ipaddress
import json
import logging
import re
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
from sqlalchemy import Connection, Engine, and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from drover.config import DroverConfig
from drover.services.api import lookups, validation
from drover.services.api.fanout import Fanout
from drover.services.api.identity import Identity, identity
from drover.services.api.server_groups import ServerGroupRpcs, visible_group
from drover.services.common import convert, metrics, request_spec, runtime, states
from drover.services.common.casts import CastSender
from drover.services.common.errors import (
    ApiError,
    failed_precondition,
    guarded,
    invalid_argument,
    not_found,
    quota_exceeded,
)
from drover.services.common.group_commit import GroupCommit
from drover.store import db
from drover.store import models as m
from drover.store.tables import ACTIONS, GROUP_MEMBERS, INSTANCES, row_values
from drover.v1 import (
    api_pb2,
    api_pb2_grpc,
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


def _settled(server: types_pb2.Server, follow: bool) -> bool:
    if server.vm_state == types_pb2.VM_STATE_DELETED:
        return True
    if follow:
        return False
    return server.task_state == types_pb2.TASK_STATE_UNSPECIFIED and server.vm_state in (
        types_pb2.VM_STATE_ACTIVE,
        types_pb2.VM_STATE_ERROR,
        types_pb2.VM_STATE_STOPPED,
    )


def _detect_format(path: Path) -> str:
    try:
        out = subprocess.run(
            ["qemu-img", "info", "--output=json", str(path)], capture_output=True, text=True, timeout=30, check=True
        )
        return str(json.loads(out.stdout).get("format", "raw"))
    except (OSError, subprocess.SubprocessError, ValueError):
        with path.open("rb") as fh:
            return "qcow2" if fh.read(4) == b"QFI\xfb" else "raw"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ApiServicer(ServerGroupRpcs, api_pb2_grpc.ApiServiceServicer):
    def __init__(self, cfg: DroverConfig, sessions: sessionmaker[Session],
                 write_sessions: sessionmaker[Session] | None = None) -> None:
        self.cfg = cfg
        self.sessions = sessions
        self.reads: Engine = sessions.kw["bind"]  # for the hot single-row reads
        self.writes = write_sessions or sessions
        self.conductor_channel = runtime.channel(cfg.api.conductor)
        self.scheduler_channel = runtime.channel(cfg.api.scheduler)
        conductor = conductor_pb2_grpc.ConductorServiceStub(self.conductor_channel)
        self.scheduler = scheduler_pb2_grpc.SchedulerServiceStub(self.scheduler_channel)
        self.conductor = CastSender(
            "api->conductor", lambda: conductor.StreamCasts(), conductor_pb2.ConductorServiceStreamCastsRequest
        )
        self.fanout = Fanout(conductor)
        self.catalog = lookups.Catalog()
        self.db = GroupCommit(self.writes, threaded=True, name="api")
        metrics.watch_sender(self.conductor)

    def start(self) -> None:
        self.conductor.start()
        self.fanout.start()

    async def stop(self) -> None:
        await self.db.stop()
        await self.conductor.close(drain_timeout=3.0)
        await self.fanout.stop()
        await self.conductor_channel.close()
        await self.scheduler_channel.close()

    # ---- lookups ---------------------------------------------------------------------

    @staticmethod
    def _flavor(s: Session, ref: str) -> m.Flavor | None:
        return s.get(m.Flavor, ref) or s.execute(select(m.Flavor).where(m.Flavor.name == ref)).scalar_one_or_none()

    @staticmethod
    def _image(s: Session, ref: str) -> m.Image | None:
        img = s.get(m.Image, ref)
        if img is None:
            img = s.execute(
                select(m.Image).where(m.Image.name == ref, m.Image.status == "active").order_by(m.Image.created_at)
            ).scalars().first()
        return img if img is not None and img.status == "active" else None

    def _instance(self, s: Session, who: Identity, ident: str, *, allow_deleted: bool = False) -> m.Instance:
        inst = s.get(m.Instance, ident)
        return self._visible(inst, who, ident, allow_deleted=allow_deleted)

    def _server_row(self, c: Connection, who: Identity, ident: str, *, allow_deleted: bool = False) -> Any:
        """Like ``_instance``, for reading only: a row, not an ORM object."""
        return self._visible(lookups.server(c, ident), who, ident, allow_deleted=allow_deleted)

    @staticmethod
    def _visible(inst: Any, who: Identity, ident: str, *, allow_deleted: bool) -> Any:
        if inst is None or (inst.deleted and not allow_deleted) or (
            not who.is_admin and inst.project_id != who.project_id
        ):
            raise not_found("server", ident)
        return inst

    # ---- servers ---------------------------------------------------------------------

    def _networks(self, s: Session, req: api_pb2.CreateServerRequest) -> list[dict[str, str]]:
        """Resolve requested networks (Nova's _determine_requested_networks)."""
        if len(req.networks) == 1 and req.networks[0].uuid == "none":
            return []
        if not req.networks or req.networks[0].uuid == "auto":
            default = self.catalog.default_network_id(s.connection())
            return [{"uuid": default}] if default is not None else []
        out, bad = [], []
        for i, n in enumerate(req.networks):
            net = s.get(m.Network, n.uuid) or s.execute(
                select(m.Network).where(m.Network.name == n.uuid)
            ).scalar_one_or_none()
            if net is None:
                bad.append((f"networks[{i}].uuid", f"network {n.uuid!r} does not exist"))
                continue
            entry = {"uuid": net.id}
            if n.fixed_ip:
                addr = ipaddress.ip_address(n.fixed_ip)
                cidrs = [c for c in (net.cidr, net.cidr_v6) if c]
                if not any(addr in ipaddress.ip_network(c, strict=False) for c in cidrs):
                    bad.append((f"networks[{i}].fixed_ip", f"{n.fixed_ip} is not in {net.name} ({', '.join(cidrs)})"))
                elif s.get(m.FixedIp, n.fixed_ip) is not None:
                    bad.append((f"networks[{i}].fixed_ip", f"{n.fixed_ip} is already in use"))
                entry["fixed_ip"] = n.fixed_ip
            out.append(entry)
        if bad:
            raise invalid_argument(bad)
        return out

    def _check_quota(self, s: Session, who: Identity, count: int, flavor: m.Flavor) -> None:
        q = self.cfg.quota
        if q.instances < 0 and q.cores < 0 and q.ram_mb < 0:
            return
        self.db.flush_inserts(s)  # the usage must count the creates earlier in this transaction
        used_n, used_cores, used_ram = s.execute(
            select(func.count(), func.coalesce(func.sum(m.Instance.vcpus), 0),
                   func.coalesce(func.sum(m.Instance.memory_mb), 0))
            .where(m.Instance.project_id == who.project_id, m.Instance.deleted.is_(False))
        ).one()
        over = []
        for resource, limit, used, want in (
            ("instances", q.instances, used_n, count),
            ("cores", q.cores, used_cores, count * flavor.vcpus),
            ("ram", q.ram_mb, used_ram, count * flavor.memory_mb),
        ):
            if limit >= 0 and used + want > limit:
                over.append((f"{resource}", f"requested {want}, used {used}, limit {limit}"))
        if over:
            raise quota_exceeded(
                "Quota exceeded for " + ", ".join(r for r, _ in over) + f" in project {who.project_id}", over
            )

    def _hint_servers(self, s: Session, field: str, ids: Any) -> list[str]:
        """The server ids of a same_host / different_host hint, each checked to exist. They go
        to the scheduler as ids: like Nova's SameHostFilter, it passes the hosts holding any of
        them (a server not placed yet is on no host)."""
        bad = []
        for i, iid in enumerate(ids):
            inst = s.get(m.Instance, iid)
            if inst is None or inst.deleted:
                bad.append((f"scheduler_hints.{field}[{i}]", f"server {iid!r} does not exist"))
        if bad:
            raise invalid_argument(bad)
        return list(ids)

    @guarded
    async def CreateServer(
        self, request: api_pb2.CreateServerRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.CreateServerResponse:
        who = identity(context)
        checked = validation.check_create(request)
        if checked.violations:
            raise invalid_argument(checked.violations)
        # Look up and check in a read transaction: SQLite's write lock is taken only for the inserts.
        with self.sessions() as s:
            c = s.connection()
            flavor = self.catalog.flavor(c, request.flavor_ref.strip())
            if flavor is None:
                raise not_found("flavor", request.flavor_ref)
            if flavor.disabled:
                raise failed_precondition(f"flavor {flavor.name} is disabled",
                                          [("FLAVOR", flavor.id, "disabled")])
            image = self.catalog.image(c, request.image_ref.strip())
            if image is None:
                raise not_found("image", request.image_ref)
            bad = []
            if image.min_ram_mb and flavor.memory_mb < image.min_ram_mb:
                bad.append(("flavor_ref", f"flavor memory {flavor.memory_mb} MB is below the image's "
                                          f"min_ram {image.min_ram_mb} MB"))
            if image.min_disk_gb and flavor.root_gb and flavor.root_gb < image.min_disk_gb:
                bad.append(("flavor_ref", f"flavor disk {flavor.root_gb} GB is below the image's "
                                          f"min_disk {image.min_disk_gb} GB"))
            if bad:
                raise invalid_argument(bad)
            networks = self._networks(s, request)
            same = self._hint_servers(s, "same_host", request.scheduler_hints.same_host)
            different = self._hint_servers(s, "different_host", request.scheduler_hints.different_host)
            group_id = request.scheduler_hints.group.strip()
            if group_id:
                group_id = visible_group(s, who, group_id, "scheduler_hints.group").id
        count = checked.max_count
        reservation = f"r-{uuid.uuid4().hex[:8]}"
        now = utcnow()
        insts = []
        for n in range(count):
            # A plain record with the model's attribute names: it is inserted with Core and read
            # by convert.server; an ORM object would only add its bookkeeping.
            insts.append(SimpleNamespace(
                id=str(uuid.uuid4()),
                name=checked.name if count == 1 else f"{checked.name}-{n + 1}",
                project_id=who.project_id,
                user_id=who.user_id,
                reservation_id=reservation,
                flavor_id=flavor.id,
                image_id=image.id,
                vcpus=flavor.vcpus,
                memory_mb=flavor.memory_mb,
                root_gb=flavor.root_gb,
                ephemeral_gb=flavor.ephemeral_gb,
                swap_mb=flavor.swap_mb,
                vm_state=states.BUILDING,
                task_state=states.SCHEDULING,
                power_state=0,
                host=None,
                node=None,
                availability_zone=request.availability_zone,
                access_ip_v4=request.access_ipv4,
                access_ip_v6=request.access_ipv6,
                key_name=request.key_name,
                requested_networks=networks,
                addresses=[],
                metadata_=dict(request.metadata),
                scheduler_hints={"same_host": same, "different_host": different},
                fault_code=0,
                fault_message="",
                fault_details="",
                fault_at=None,
                scheduler_explanation={},
                build_attempts=0,
                revision=1,
                created_at=now,
                updated_at=now,
                launched_at=None,
                terminated_at=None,
                deleted=False,
            ))
        rows = [row_values(i) for i in insts]
        actions = [dict(instance_id=i.id, action="create", request_id=who.request_id, user_id=who.user_id,
                        project_id=who.project_id, start_time=now, finish_time=None, message="") for i in insts]

        def store(s: Session) -> None:
            self._check_quota(s, who, count, flavor)
            # Inserted with the rest of the batch's creates, one statement per table.
            self.db.insert_later(INSTANCES, rows)
            self.db.insert_later(ACTIONS, actions)
            if group_id:
                self.db.insert_later(GROUP_MEMBERS, [{"group_id": group_id, "instance_id": i.id} for i in insts])

        await self.db.run(store)  # shares one transaction with the creates that arrive meanwhile
        spec = request_spec.build(insts, flavor, image, min_count=checked.min_count,
                                  same_host=same, different_host=different, group_id=group_id)
        servers = [convert.server(i) for i in insts]
        # compute.API.create: cast build_instances and return at once (Nova's 202).
        self.conductor.cast(
            build_instances=conductor_pb2.BuildInstancesCast(spec=spec, request_id=who.request_id)
        )
        return api_pb2.CreateServerResponse(server=servers[0], reservation_id=reservation, servers=servers)

    @guarded
    async def GetServer(
        self, request: api_pb2.GetServerRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.GetServerResponse:
        if not request.id:
            raise invalid_argument([("id", "is required")])
        with self.reads.connect() as c:
            return api_pb2.GetServerResponse(server=convert.server(self._server_row(c, identity(context), request.id)))

    @staticmethod
    def _page_token(inst: m.Instance) -> str:
        raw = json.dumps([inst.created_at.isoformat(), inst.id]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def _parse_token(token: str) -> tuple[Any, str]:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            created, iid = json.loads(raw)

            return dt.datetime.fromisoformat(created), str(iid)
        except (ValueError, TypeError, binascii.Error):
            raise invalid_argument([("page_token", "is not a token this API handed out")]) from None

    @guarded
    async def ListServers(
        self, request: api_pb2.ListServersRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.ListServersResponse:
        who = identity(context)
        bad = []
        size = request.page_size or self.cfg.api.default_page_size
        if request.page_size < 0 or size > self.cfg.api.max_page_size:
            bad.append(("page_size", f"must be between 1 and {self.cfg.api.max_page_size}"))
        if request.name:
            try:
                re.compile(request.name)
            except re.error as exc:
                bad.append(("name", f"is not a valid regular expression: {exc}"))
        if request.status and request.status not in states.VM_STATES_OF_STATUS:
            bad.append(("status", "unknown status"))
        if bad:
            raise invalid_argument(bad)
        q = select(m.Instance)
        if not who.is_admin:
            q = q.where(m.Instance.project_id == who.project_id)
        if request.status:
            vm_state = states.VM_STATES_OF_STATUS[request.status]
            q = q.where(m.Instance.vm_state == vm_state)
            if vm_state != states.DELETED and not request.include_deleted:
                q = q.where(m.Instance.deleted.is_(False))
        elif not request.include_deleted:
            q = q.where(m.Instance.deleted.is_(False))
        if request.name:
            q = q.where(m.Instance.name.regexp_match(request.name))
        if request.host:
            q = q.where(m.Instance.host == request.host)
        if request.page_token:
            created, iid = self._parse_token(request.page_token)
            q = q.where(or_(m.Instance.created_at < created,
                            and_(m.Instance.created_at == created, m.Instance.id < iid)))
        q = q.order_by(m.Instance.created_at.desc(), m.Instance.id.desc()).limit(size + 1)
        with self.sessions() as s:
            rows = s.execute(q).scalars().all()
        more = len(rows) > size
        rows = rows[:size]
        return api_pb2.ListServersResponse(
            servers=[convert.server(i) for i in rows],
            next_page_token=self._page_token(rows[-1]) if more and rows else "",
        )

    @guarded
    async def DeleteServer(
        self, request: api_pb2.DeleteServerRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.DeleteServerResponse:
        who = identity(context)
        if not request.id:
            raise invalid_argument([("id", "is required")])
        with self.writes.begin() as s:
            inst = self._instance(s, who, request.id)
            if inst.task_state != states.DELETING:
                inst.task_state = states.DELETING
                inst.revision += 1
                inst.updated_at = utcnow()
                s.add(m.InstanceAction(instance_id=inst.id, action="delete", request_id=who.request_id,
                                       user_id=who.user_id, project_id=who.project_id))
            server = convert.server(inst)
        self.conductor.cast(
            delete_instance=conductor_pb2.DeleteInstanceCast(instance_id=request.id, request_id=who.request_id)
        )
        return api_pb2.DeleteServerResponse(server=server)

    async def WatchServer(
        self, request: api_pb2.WatchServerRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[api_pb2.WatchServerResponse]:
        async for item in self._watch(request, context):
            yield item

    @guarded
    async def _watch(
        self, request: api_pb2.WatchServerRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[api_pb2.WatchServerResponse]:
        who = identity(context)
        if not request.id:
            raise invalid_argument([("id", "is required")])
        q = self.fanout.subscribe(request.id)
        try:
            with self.reads.connect() as c:  # a plain connection: no ORM session for one row
                server = convert.server(self._server_row(c, who, request.id, allow_deleted=True))
            replay = self._missed(request, server)
            catching_up = False
            if replay is not None:  # what happened since the client's revision, in order
                changes, complete = replay
                for change in changes:
                    note = change.notification if change.HasField("notification") else None
                    yield api_pb2.WatchServerResponse(server=change.server, notification=note)
                # The rest is in the store but not yet relayed: it follows on the subscription.
                catching_up = not complete
                last = changes[-1].server.revision if changes else request.since_revision
                if changes:
                    server = changes[-1].server
            else:
                yield api_pb2.WatchServerResponse(server=server)
                last = server.revision
            if not catching_up and _settled(server, request.follow):
                return
            while True:
                # Events flow from the conductor; a quiet stream resyncs from the store, quickly when the
                # subscription is down or relayed changes are still due, rarely when it is up (so queued
                # notifications are not overtaken).
                quiet = 10.0 if self.fanout.connected.is_set() and not catching_up else 1.0
                try:
                    ev = await asyncio.wait_for(q.get(), timeout=quiet)
                except TimeoutError:
                    ev = None
                if ev is None:  # resync from the store (missed events, conductor reconnect, quiet period)
                    with self.reads.connect() as c:
                        row = lookups.server(c, request.id)
                        if row is None:
                            return
                        fresh = convert.server(row)
                    if fresh.revision <= last:
                        continue
                    server = fresh
                    out = api_pb2.WatchServerResponse(server=server)
                elif ev.server.revision > last:
                    server = ev.server
                    out = api_pb2.WatchServerResponse(
                        server=server, notification=ev.notification if ev.HasField("notification") else None)
                elif ev.HasField("notification"):
                    # Older than what a resync already showed: keep the notification, with the newest state.
                    out = api_pb2.WatchServerResponse(server=server, notification=ev.notification)
                else:
                    continue
                last = max(last, server.revision)
                catching_up = False
                yield out
                if _settled(server, request.follow):
                    return
        finally:
            self.fanout.unsubscribe(request.id, q)

    def _missed(self, request: api_pb2.WatchServerRequest, server: types_pb2.Server
                ) -> tuple[list[conductor_pb2.InstanceChange], bool] | None:
        """The relayed changes after ``since_revision`` up to the stored ``server``, and whether they
        reach it; None when the stream must start from the stored state instead."""
        if not 0 < request.since_revision < server.revision:
            return None
        replay = self.fanout.history.between(request.id, request.since_revision, server.revision)
        if replay is None or replay[1]:
            return replay
        # Not all relayed yet: worth waiting for only while changes flow and this one is recent
        # (an old change is missing because it was dropped from the history, not late).
        recent = server.updated_at.ToDatetime() > utcnow() - dt.timedelta(seconds=self.fanout.history.retention / 2)
        return replay if self.fanout.connected.is_set() and recent else None

    @guarded
    async def ListServerActions(
        self, request: api_pb2.ListServerActionsRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.ListServerActionsResponse:
        if not request.server_id:
            raise invalid_argument([("server_id", "is required")])
        with self.sessions() as s:
            inst = self._instance(s, identity(context), request.server_id, allow_deleted=True)
            return api_pb2.ListServerActionsResponse(actions=[convert.action(a) for a in inst.actions])

    @guarded
    async def GetConsoleOutput(
        self, request: api_pb2.GetConsoleOutputRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.GetConsoleOutputResponse:
        with self.sessions() as s:
            inst = self._instance(s, identity(context), request.id)
            host = inst.host
        if not host or (inst.vm_state == states.BUILDING and inst.task_state == states.SCHEDULING):
            raise failed_precondition(f"server {request.id} is not on a host yet",
                                      [("STATE", request.id, "not scheduled")])
        hosts = await self.scheduler.ListHosts(scheduler_pb2.SchedulerServiceListHostsRequest(hosts=[host]),
                                               timeout=5)
        address = next((h.agent_address for h in hosts.hosts if h.host == host), "")
        if not address:
            raise ApiError(grpc.StatusCode.UNAVAILABLE, f"compute host {host} is not reporting")
        async with runtime.channel(address) as chan:
            try:
                out = await compute_pb2_grpc.ComputeServiceStub(chan).GetConsoleOutput(
                    compute_pb2.ComputeServiceGetConsoleOutputRequest(instance_id=request.id, host=host,
                                                                      length=request.length), timeout=10)
            except grpc.aio.AioRpcError as exc:
                raise ApiError(exc.code(), exc.details() or "console unavailable") from None
        return api_pb2.GetConsoleOutputResponse(output=out.output)

    # ---- flavors, images, networks, hosts ---------------------------------------------------

    @guarded
    async def ListFlavors(
        self, request: api_pb2.ListFlavorsRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.ListFlavorsResponse:
        with self.sessions() as s:
            rows = s.execute(select(m.Flavor).order_by(m.Flavor.memory_mb, m.Flavor.name)).scalars().all()
            return api_pb2.ListFlavorsResponse(flavors=[convert.flavor(f) for f in rows])

    @guarded
    async def GetFlavor(
        self, request: api_pb2.GetFlavorRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.GetFlavorResponse:
        with self.sessions() as s:
            f = self._flavor(s, request.id)
            if f is None:
                raise not_found("flavor", request.id)
            return api_pb2.GetFlavorResponse(flavor=convert.flavor(f))

    @guarded
    async def CreateFlavor(
        self, request: api_pb2.CreateFlavorRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.CreateFlavorResponse:
        who = identity(context)
        if not who.is_admin:
            raise ApiError(grpc.StatusCode.PERMISSION_DENIED, "creating flavors is an admin action")
        f = request.flavor
        name, bad = validation.check_name(f.name, "flavor.name")
        if f.vcpus < 1:
            bad.append(("flavor.vcpus", "must be at least 1"))
        if f.memory_mb < 1:
            bad.append(("flavor.memory_mb", "must be at least 1"))
        for fld in ("root_gb", "ephemeral_gb", "swap_mb"):
            if getattr(f, fld) < 0:
                bad.append((f"flavor.{fld}", "must not be negative"))
        if bad:
            raise invalid_argument(bad)
        row = m.Flavor(id=f.id or str(uuid.uuid4()), name=name, vcpus=f.vcpus, memory_mb=f.memory_mb,
                       root_gb=f.root_gb, ephemeral_gb=f.ephemeral_gb, swap_mb=f.swap_mb,
                       is_public=True, disabled=False, extra_specs=dict(f.extra_specs))
        try:
            with self.writes.begin() as s:
                s.add(row)
        except IntegrityError:
            raise ApiError(grpc.StatusCode.ALREADY_EXISTS, f"flavor {name!r} or id {row.id!r} exists") from None
        self.catalog.clear()
        return api_pb2.CreateFlavorResponse(flavor=convert.flavor(row))

    @guarded
    async def CreateImage(
        self, request: api_pb2.CreateImageRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.CreateImageResponse:
        name, bad = validation.check_name(request.name)
        path = Path(request.path).expanduser() if request.path else None
        if path is None:
            bad.append(("path", "is required"))
        elif not path.is_file():
            bad.append(("path", f"{request.path} is not a readable file on the API host"))
        if request.disk_format and request.disk_format not in ("qcow2", "raw", "kernel"):
            bad.append(("disk_format", "must be qcow2, raw or kernel"))
        if request.initrd_path and not Path(request.initrd_path).is_file():
            bad.append(("initrd_path", f"{request.initrd_path} is not a readable file on the API host"))
        if request.initrd_path and request.disk_format not in ("", "kernel"):
            bad.append(("initrd_path", "only a kernel image takes an initrd"))
        if request.min_disk_gb < 0 or request.min_ram_mb < 0:
            bad.append(("min_disk_gb", "minimums must not be negative"))
        if bad:
            raise invalid_argument(bad)
        assert path is not None
        path = path.resolve()
        fmt = request.disk_format or ("kernel" if request.initrd_path else "")
        if not fmt:
            fmt = await asyncio.to_thread(_detect_format, path)
        checksum = await asyncio.to_thread(_sha256, path)
        row = m.Image(
            id=str(uuid.uuid4()), name=name, status="active", disk_format=fmt, path=str(path),
            initrd_path=str(Path(request.initrd_path).resolve()) if request.initrd_path else "",
            size_bytes=path.stat().st_size, checksum_sha256=checksum, min_disk_gb=request.min_disk_gb,
            min_ram_mb=request.min_ram_mb, properties=dict(request.properties),
        )
        with self.writes.begin() as s:
            s.add(row)
        self.catalog.clear()
        return api_pb2.CreateImageResponse(image=convert.image(row))

    @guarded
    async def ListImages(
        self, request: api_pb2.ListImagesRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.ListImagesResponse:
        with self.sessions() as s:
            rows = s.execute(select(m.Image).where(m.Image.status == "active").order_by(m.Image.created_at)).scalars()
            return api_pb2.ListImagesResponse(images=[convert.image(i) for i in rows])

    @guarded
    async def GetImage(
        self, request: api_pb2.GetImageRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.GetImageResponse:
        with self.sessions() as s:
            img = self._image(s, request.id)
            if img is None:
                raise not_found("image", request.id)
            return api_pb2.GetImageResponse(image=convert.image(img))

    @guarded
    async def DeleteImage(
        self, request: api_pb2.DeleteImageRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.DeleteImageResponse:
        with self.writes.begin() as s:
            img = self._image(s, request.id)
            if img is None:
                raise not_found("image", request.id)
            img.status = "deleted"
        self.catalog.clear()
        return api_pb2.DeleteImageResponse()

    @guarded
    async def ListNetworks(
        self, request: api_pb2.ListNetworksRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.ListNetworksResponse:
        with self.sessions() as s:
            rows = s.execute(select(m.Network).order_by(m.Network.name)).scalars()
            return api_pb2.ListNetworksResponse(networks=[convert.network(n) for n in rows])

    @guarded
    async def ListHosts(
        self, request: api_pb2.ListHostsRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.ListHostsResponse:
        if not identity(context).is_admin:
            raise ApiError(grpc.StatusCode.PERMISSION_DENIED, "listing hosts is an admin action")
        try:
            resp = await self.scheduler.ListHosts(scheduler_pb2.SchedulerServiceListHostsRequest(limit=1000),
                                                  timeout=10)
        except grpc.aio.AioRpcError as exc:
            raise ApiError(grpc.StatusCode.UNAVAILABLE, f"scheduler unavailable: {exc.code().name}") from None
        return api_pb2.ListHostsResponse(hosts=resp.hosts)


async def serve(cfg: DroverConfig, *, ready: Any = None) -> None:
    engine = db.make_engine(cfg.db_url)
    write_engine = db.make_engine(cfg.db_url, for_writes=True)
    servicer = ApiServicer(cfg, db.session_factory(engine), db.session_factory(write_engine))
    host = runtime.ServiceHost(cfg.api.listen, [api_pb2.DESCRIPTOR.services_by_name["ApiService"].full_name],
                               metrics_port=cfg.api.metrics_port)
    host.add(api_pb2_grpc.add_ApiServiceServicer_to_server, servicer)
    try:
        await runtime.serve_until_signal(host, "api", started=servicer.start, stopping=servicer.stop, ready=ready)
    finally:
        engine.dispose()
        write_engine.dispose()


def main(cfg: DroverConfig) -> None:
    runtime.setup_logging(cfg.log_level)
    runtime.run(lambda: serve(cfg))
