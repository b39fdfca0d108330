"""Server groups in the store: policies, members, and the hosts members run on."""

from __future__ import annotations

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


def placement(c: Connection, group_id: str, exclude: list[str]) -> tuple[str, list[str]]:
    """(policy, hosts the other members run on) for scheduling into the group.

    A group deleted meanwhile binds nothing: ("", []).
    """
    policy = c.execute(select(SERVER_GROUPS.c.policy).where(SERVER_GROUPS.c.id == group_id)).scalar_one_or_none()
    if policy is None:
        return "", []
    hosts = c.execute(
        select(INSTANCES.c.host).distinct()
        .join(GROUP_MEMBERS, GROUP_MEMBERS.c.instance_id == INSTANCES.c.id)
        .where(GROUP_MEMBERS.c.group_id == group_id, INSTANCES.c.deleted.is_(False),
               INSTANCES.c.host.is_not(None), INSTANCES.c.id.not_in(exclude))
    ).scalars()
    return policy, sorted(h for h in hosts if h)
