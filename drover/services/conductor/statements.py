"""The conductor's hot-path statements, built once.

Building and cache-keying a Core statement costs more than running it on SQLite;
these are built at import (or once per shape) and run with bound parameters.
"""

from __future__ import annotations

import functools

from sqlalchemy import Integer, Select, Update, and_, bindparam, case, exists, select, update

from drover.services.common import states
from drover.store.tables import ACTIONS, EVENTS, INSTANCES, SERVER_COLUMNS

# Instances a build_instances cast names, with their create action.
BUILD_CANDIDATES: Select = (
    select(INSTANCES.c.id, INSTANCES.c.deleted, INSTANCES.c.vm_state, INSTANCES.c.task_state,
           INSTANCES.c.host, ACTIONS.c.id.label("action_id"),
           # whether the action has events yet (a fresh one has none: no replay checks needed)
           exists().where(EVENTS.c.action_id == ACTIONS.c.id).label("has_events"))
    .outerjoin(ACTIONS, and_(ACTIONS.c.instance_id == INSTANCES.c.id, ACTIONS.c.action == "create"))
    .where(INSTANCES.c.id.in_(bindparam("b_ids", expanding=True)))
)

# One instance, whole, locked for this transaction (PostgreSQL; SQLite's writer holds the database).
INSTANCE_FOR_UPDATE: Select = select(*SERVER_COLUMNS).where(INSTANCES.c.id == bindparam("b_id")).with_for_update()

# The scheduler's choice and the allocated addresses.
ASSIGN_HOST: Update = (
    update(INSTANCES).where(INSTANCES.c.id == bindparam("b_id"))
    .values(host=bindparam("b_host"), node=bindparam("b_node"), build_attempts=INSTANCES.c.build_attempts + 1,
            addresses=bindparam("b_addresses", type_=INSTANCES.c.addresses.type),
            revision=INSTANCES.c.revision + 1, updated_at=bindparam("b_now"))
    .returning(*SERVER_COLUMNS)
)

# Columns a compute update may set; vm_state and task_state are left alone while a delete runs.
UPDATABLE = ("vm_state", "task_state", "power_state", "launched_at",
             "fault_code", "fault_message", "fault_details", "fault_at")
_DELETING = INSTANCES.c.task_state == states.DELETING


@functools.cache
def instance_update(fields: tuple[str, ...], match_host: bool) -> Update:
    """UPDATE … RETURNING for a compute update setting ``fields`` (bound as ``b_<field>``).

    ``match_host``: only while the instance is still on ``b_host`` (else it is late news
    from an earlier build attempt and must not apply).
    """
    # b_steps: how many steps of a compute report this statement applies (a run of several),
    # so the revision still advances once per step.
    values: dict[str, object] = {"revision": INSTANCES.c.revision + bindparam("b_steps", type_=Integer),
                                 "updated_at": bindparam("b_now")}
    for name in fields:
        column = INSTANCES.c[name]
        param = bindparam(f"b_{name}", type_=column.type)
        if name in ("vm_state", "task_state"):
            values[name] = case((_DELETING, column), else_=param)
        else:
            values[name] = param
    stmt = update(INSTANCES).where(INSTANCES.c.id == bindparam("b_id"), INSTANCES.c.deleted.is_(False))
    if match_host:
        stmt = stmt.where(INSTANCES.c.host == bindparam("b_host"))
    return stmt.values(values).returning(*SERVER_COLUMNS)


@functools.cache
def instance_columns(columns: tuple[str, ...]) -> Select:
    """Some columns of one instance (the values a merged update overwrites)."""
    return select(*(INSTANCES.c[c] for c in columns)).where(INSTANCES.c.id == bindparam("b_id"))
