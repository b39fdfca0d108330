"""Fixed IP allocation: sequential within the network's CIDR, uniqueness enforced by the table."""

from __future__ import annotations

import ipaddress

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from drover.store import models as m


class NetworkFull(Exception):
    pass


def allocate(s: Session, network: m.Network, instance_id: str, fixed_ip: str = "") -> str:
    """Allocate one address in ``network`` for the instance (the requested one if given)."""
    if fixed_ip:
        s.add(m.FixedIp(address=fixed_ip, network_id=network.id, instance_id=instance_id))
        s.flush()
        return fixed_ip
    net = ipaddress.ip_network(network.cidr, strict=False)
    size = net.num_addresses
    usable = size - 3 if size > 4 else size  # network, gateway (.1), broadcast
    for _ in range(min(usable, 4096)):
        offset = network.next_offset
        if offset >= size - 1:
            offset = 2
        network.next_offset = offset + 1
        address = str(net.network_address + offset)
        try:
            with s.begin_nested():
                s.add(m.FixedIp(address=address, network_id=network.id, instance_id=instance_id))
            return address
        except IntegrityError:
            continue
    raise NetworkFull(f"network {network.name} ({network.cidr}) has no free address")


def release(s: Session, instance_id: str) -> None:
    s.execute(delete(m.FixedIp).where(m.FixedIp.instance_id == instance_id))


def in_use(s: Session, address: str) -> bool:
    return s.execute(select(m.FixedIp.address).where(m.FixedIp.address == address)).first() is not None
