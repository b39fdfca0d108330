"""The models' tables, typed as ``Table``, for the hot paths that write with Core statements."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, inspect

from drover.store import models as m

INSTANCES = cast(Table, m.Instance.__table__)
ACTIONS = cast(Table, m.InstanceAction.__table__)
EVENTS = cast(Table, m.InstanceActionEvent.__table__)
FLAVORS = cast(Table, m.Flavor.__table__)
IMAGES = cast(Table, m.Image.__table__)
NETWORKS = cast(Table, m.Network.__table__)
FIXED_IPS = cast(Table, m.FixedIp.__table__)

# Every instance column under its ORM attribute name, so a row reads like an ``m.Instance``
# (``convert.server`` takes either).
SERVER_COLUMNS = [c.label("metadata_") if c.name == "metadata" else c for c in INSTANCES.c]

_INSTANCE_ATTRS = [(attr.key, attr.columns[0].name) for attr in inspect(m.Instance).column_attrs]


def row_values(inst: Any) -> dict[str, Any]:
    """Column name -> value of a new instance (anything with ``m.Instance``'s attribute names),
    for a Core insert; every column set."""
    return {name: getattr(inst, key) for key, name in _INSTANCE_ATTRS}


SERVER_GROUPS = cast(Table, m.ServerGroup.__table__)
GROUP_MEMBERS = cast(Table, m.ServerGroupMember.__table__)
CLIENT_TOKENS = cast(Table, m.ClientToken.__table__)
