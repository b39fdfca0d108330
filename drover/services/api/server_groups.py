"""ApiService's server-group RPCs (Nova's os-server-groups)."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import grpc
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from drover.auth.policy import Policy
from drover.services.api import validation
from drover.services.api.identity import Identity, enforce, identity
from drover.services.common import convert
from drover.services.common import server_groups as groups
from drover.services.common.errors import ApiError, guarded, invalid_argument, not_found
from drover.services.common.group_commit import GroupCommit
from drover.store import models as m
from drover.store.tables import GROUP_MEMBERS, SERVER_GROUPS
from drover.v1 import api_pb2, types_pb2


def _message(row: Any, member_ids: list[str]) -> types_pb2.ServerGroup:
    out = types_pb2.ServerGroup(id=row.id, name=row.name, policy=row.policy, project_id=row.project_id,
                                user_id=row.user_id, members=member_ids,
                                max_server_per_host=row.max_server_per_host or 0)
    stamp = convert.ts(row.created_at)
    if stamp is not None:
        out.created_at.CopyFrom(stamp)
    return out


def visible_group(s: Session, who: Identity, group_id: str, field: str = "id") -> Any:
    """The group's row if this caller may use it; INVALID_ARGUMENT on ``field`` otherwise."""
    row = s.connection().execute(select(SERVER_GROUPS).where(SERVER_GROUPS.c.id == group_id)).first()
    if row is None or (not who.is_admin and row.project_id != who.project_id):
        raise invalid_argument([(field, f"server group {group_id!r} does not exist")])
    return row


class ServerGroupRpcs:
    sessions: sessionmaker[Session]
    db: GroupCommit  # every write goes through the service's group commit
    policy: Policy

    @guarded
    async def CreateServerGroup(
        self, request: api_pb2.CreateServerGroupRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.CreateServerGroupResponse:
        who = identity(context)
        name, bad = validation.check_name(request.name)
        if request.policy not in groups.POLICIES:
            bad.append(("policy", f"must be one of {', '.join(groups.POLICIES)}"))
        if request.max_server_per_host < 0:
            bad.append(("max_server_per_host", "must be a positive integer"))
        elif request.max_server_per_host and request.policy != "anti-affinity":
            bad.append(("max_server_per_host", "is a rule of anti-affinity groups only"))
        if bad:
            raise invalid_argument(bad)
        row = dict(id=str(uuid.uuid4()), name=name, policy=request.policy, project_id=who.project_id,
                   user_id=who.user_id, created_at=m.utcnow(),
                   max_server_per_host=request.max_server_per_host or None)
        await self.db.run(lambda s: s.connection().execute(insert(SERVER_GROUPS).values(**row)))
        return api_pb2.CreateServerGroupResponse(server_group=_message(SimpleNamespace(**row), []))

    @guarded
    async def GetServerGroup(
        self, request: api_pb2.GetServerGroupRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.GetServerGroupResponse:
        if not request.id:
            raise invalid_argument([("id", "is required")])
        with self.sessions() as s:
            row = self._group(s, identity(context), request.id)
            return api_pb2.GetServerGroupResponse(server_group=_message(row, groups.members(s.connection(), row.id)))

    @guarded
    async def ListServerGroups(
        self, request: api_pb2.ListServerGroupsRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.ListServerGroupsResponse:
        who = identity(context)
        query = select(SERVER_GROUPS).order_by(SERVER_GROUPS.c.created_at, SERVER_GROUPS.c.id)
        if request.all_projects:
            enforce(self.policy, who, "ListServerGroups:all_projects")
        else:
            query = query.where(SERVER_GROUPS.c.project_id == who.project_id)
        with self.sessions() as s:
            c = s.connection()
            return api_pb2.ListServerGroupsResponse(
                server_groups=[_message(row, groups.members(c, row.id)) for row in c.execute(query)])

    @guarded
    async def DeleteServerGroup(
        self, request: api_pb2.DeleteServerGroupRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.DeleteServerGroupResponse:
        if not request.id:
            raise invalid_argument([("id", "is required")])
        who = identity(context)

        def remove(s: Session) -> None:
            row = self._group(s, who, request.id)
            c = s.connection()
            c.execute(delete(GROUP_MEMBERS).where(GROUP_MEMBERS.c.group_id == row.id))
            c.execute(delete(SERVER_GROUPS).where(SERVER_GROUPS.c.id == row.id))

        await self.db.run(remove)
        return api_pb2.DeleteServerGroupResponse()

    @staticmethod
    def _group(s: Session, who: Identity, group_id: str) -> Any:
        try:
            return visible_group(s, who, group_id)
        except ApiError:
            raise not_found("server group", group_id) from None
