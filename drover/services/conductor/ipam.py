"""Fixed IP allocation: sequential within the network's CIDR, uniqueness enforced by the table.

Core statements: this runs for every build inside the conductor's write transaction.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from drover.store import models as m
from drover.store.tables import FIXED_IPS, NETWORKS


class AllocationError(Exception):
    pass


class NetworkFull(AllocationError):
    pass


class AddressInUse(AllocationError):
    pass


# Take the next offset and read the network in one statement.
_BUMP = (update(NETWORKS).where(NETWORKS.c.id == bindparam("b_id"))
         .values(next_offset=NETWORKS.c.next_offset + 1).returning(*NETWORKS.c))
# INSERT … ON CONFLICT DO NOTHING where the dialect has it: no savepoint per attempt.
# RETURNING says whether the row went in (rowcount is not reliable for inserts on every driver).
_CLAIM = {"sqlite": sqlite_insert(FIXED_IPS).on_conflict_do_nothing().returning(FIXED_IPS.c.address),
          "postgresql": pg_insert(FIXED_IPS).on_conflict_do_nothing().returning(FIXED_IPS.c.address)}


def _claim(c: Connection, address: str, network_id: str, instance_id: str) -> bool:
    """Insert the address for the instance; False when it is taken (the primary key says so)."""
    values = {"address": address, "network_id": network_id, "instance_id": instance_id}
    claim = _CLAIM.get(c.dialect.name)
    if claim is not None:
        return c.execute(claim, values).first() is not None
    try:
        with c.begin_nested():
            c.execute(insert(FIXED_IPS), values)
    except IntegrityError:
        return False
    return True


def allocate(c: Connection, network_id: str, instance_id: str, fixed_ip: str = "") -> tuple[Any, str] | None:
    """Allocate one address on the network for the instance (the requested one if given).

    Returns (the network's row, the address), or None when the network does not exist.
    """
    if fixed_ip:
        net = c.execute(select(NETWORKS).where(NETWORKS.c.id == network_id)).first()
        if net is None:
            return None
        if not _claim(c, fixed_ip, net.id, instance_id):
            raise AddressInUse(f"fixed IP {fixed_ip} on network {net.name} is already in use")
        return net, fixed_ip
    net = c.execute(_BUMP, {"b_id": network_id}).first()
    if net is None:
        return None
    cidr = ipaddress.ip_network(net.cidr, strict=False)
    usable = cidr.num_addresses - 3 if cidr.num_addresses > 4 else cidr.num_addresses  # network, .1, broadcast
    for attempt in range(min(usable, 4096)):
        if attempt:
            net = c.execute(_BUMP, {"b_id": network_id}).one()
        offset = net.next_offset - 1
        if offset >= cidr.num_addresses - 1 or offset < 2:  # past the end (or before .2): wrap around
            offset = 2
            c.execute(update(NETWORKS).where(NETWORKS.c.id == network_id).values(next_offset=offset + 1))
        address = str(cidr.network_address + offset)
        if _claim(c, address, net.id, instance_id):
            return net, address
    raise NetworkFull(f"network {net.name} ({net.cidr}) has no free address")


def release(s: Session, instance_id: str) -> None:
    s.execute(delete(m.FixedIp).where(m.FixedIp.instance_id == instance_id))


def in_use(s: Session, address: str) -> bool:
    return s.execute(select(m.FixedIp.address).where(m.FixedIp.address == address)).first() is not None
