"""Default rows: Nova's classic flavors and one tenant network."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from drover.store import models as m

# Nova's historical default flavors (id, name, vcpus, ram MB, root GB).
DEFAULT_FLAVORS = [
    ("1", "m1.tiny", 1, 512, 1),
    ("2", "m1.small", 1, 2048, 20),
    ("3", "m1.medium", 2, 4096, 40),
    ("4", "m1.large", 4, 8192, 80),
    ("5", "m1.xlarge", 8, 16384, 160),
]
DEFAULT_NETWORK = ("private", "10.16.0.0/12", "fd00:d0e::/64")


def seed_defaults(s: Session) -> None:
    """Insert the default flavors and network where missing (idempotent)."""
    have = set(s.execute(select(m.Flavor.id)).scalars())
    for fid, name, vcpus, ram, disk in DEFAULT_FLAVORS:
        if fid not in have:
            s.add(m.Flavor(id=fid, name=name, vcpus=vcpus, memory_mb=ram, root_gb=disk, ephemeral_gb=0,
                           swap_mb=0, is_public=True, disabled=False, extra_specs={}))
    name, cidr, cidr6 = DEFAULT_NETWORK
    if s.execute(select(m.Network).where(m.Network.name == name)).scalar_one_or_none() is None:
        s.add(m.Network(id=str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.drover")), name=name, cidr=cidr,
                        cidr_v6=cidr6, next_offset=2))


def prepare(url: str) -> None:
    """Migrate to the newest schema and seed defaults."""
    from drover.store import db

    db.upgrade(url)
    engine = db.make_engine(url, for_writes=True)
    try:
        with db.session_factory(engine).begin() as s:
            seed_defaults(s)
    finally:
        engine.dispose()
