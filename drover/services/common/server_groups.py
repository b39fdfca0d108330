"""Server groups in the store: policies, members, and the hosts members run on."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, select

from drover.store.tables import GROUP_MEMBERS, INSTANCES, SERVER_GROUPS

# Nova's policies (os-server-groups 2.64): the hard ones are filters, the soft ones weighers.
POLICIES = ("affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity")


def members(c: Connection, group_id: str) -> list[str]:
    """Ids of the group's servers that still exist, oldest first."""
    return list(c.execute(
        select(INSTANCES.c.id)
        .join(GROUP_MEMBERS, GROUP_MEMBERS.c.instance_id == INSTANCES.c.id)
        .where(GROUP_MEMBERS.c.group_id == group_id, INSTANCES.c.deleted.is_(False))
        .order_by(INSTANCES.c.created_at, INSTANCES.c.id)
    ).scalars())


def group_of(c: Connection, instance_id: str) -> str | None:
    return c.execute(
        select(GROUP_MEMBERS.c.group_id).where(GROUP_MEMBERS.c.instance_id == instance_id)
    ).scalar_one_or_none()


@dataclass(frozen=True)
class Placement:
    """What scheduling into a group needs: its policy, the host of each other member (one
    entry per member: Nova's anti-affinity and soft weighers count members per host) and the
    anti-affinity rule (0: Nova's default, 1)."""

    policy: str = ""
    hosts: list[str] = field(default_factory=list)
    max_server_per_host: int = 0


def placement(c: Connection, group_id: str, exclude: list[str]) -> Placement:
    """A group deleted meanwhile binds nothing: ``Placement()``."""
    row = c.execute(
        select(SERVER_GROUPS.c.policy, SERVER_GROUPS.c.max_server_per_host).where(SERVER_GROUPS.c.id == group_id)
    ).first()
    if row is None:
        return Placement()
    hosts = c.execute(
        select(INSTANCES.c.host)
        .join(GROUP_MEMBERS, GROUP_MEMBERS.c.instance_id == INSTANCES.c.id)
        .where(GROUP_MEMBERS.c.group_id == group_id, INSTANCES.c.deleted.is_(False),
               INSTANCES.c.host.is_not(None), INSTANCES.c.id.not_in(exclude))
    ).scalars()
    return Placement(row.policy, sorted(h for h in hosts if h), row.max_server_per_host or 0)
