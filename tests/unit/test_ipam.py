"""Fixed IP allocation on a real store: SQLite, and PostgreSQL when DROVER_TEST_POSTGRES_URL names one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, insert, select

from drover.services.conductor import ipam
from drover.store import db
from drover.store import models as m
from drover.store.tables import FIXED_IPS, NETWORKS
from tests.postgres import fresh_database


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The same store on both engines: the claim statement differs per dialect."""
    urls = iter([f"sqlite:///{tmp_path / 'ipam.db'}"]) if request.param == "sqlite" else fresh_database("drover_ipam")
    url = next(urls)
    db.upgrade(url)
    engine = db.make_engine(url, for_writes=True)
    with engine.begin() as c:
        c.execute(insert(NETWORKS).values(id="tiny", name="tiny", cidr="10.0.0.0/29", cidr_v6="", next_offset=2))
    yield engine
    engine.dispose()
    next(urls, None)  # drops the PostgreSQL database


def test_addresses_are_handed_out_in_order_and_never_twice(engine: Engine) -> None:
    with engine.begin() as c:
        got = [ipam.allocate(c, "tiny", f"i{n}") for n in range(5)]  # .2 … .6 are usable in a /29
    assert [found[1] for found in got if found] == [f"10.0.0.{n}" for n in range(2, 7)]
    with engine.begin() as c, pytest.raises(ipam.NetworkFull, match="tiny"):
        ipam.allocate(c, "tiny", "i5")


def test_released_addresses_are_reused_after_wrapping_around(engine: Engine) -> None:
    with engine.begin() as c:
        for n in range(5):
            ipam.allocate(c, "tiny", f"i{n}")
        c.execute(delete(FIXED_IPS).where(FIXED_IPS.c.instance_id == "i1"))
        found = ipam.allocate(c, "tiny", "again")
        assert found is not None and found[1] == "10.0.0.3"
        owners = dict(c.execute(select(m.FixedIp.address, m.FixedIp.instance_id)).all())
    assert owners["10.0.0.3"] == "again" and len(owners) == 5


def test_a_requested_address_in_use_is_refused(engine: Engine) -> None:
    with engine.begin() as c:
        assert ipam.allocate(c, "tiny", "a", fixed_ip="10.0.0.5") is not None
        with pytest.raises(ipam.AddressInUse, match=r"10\.0\.0\.5"):
            ipam.allocate(c, "tiny", "b", fixed_ip="10.0.0.5")
        # The sequential allocator steps over it.
        got = [ipam.allocate(c, "tiny", f"s{n}") for n in range(4)]
    assert [found[1] for found in got if found] == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.6"]


def test_an_unknown_network_gives_nothing(engine: Engine) -> None:
    with engine.begin() as c:
        assert ipam.allocate(c, "nope", "i") is None
        assert ipam.allocate(c, "nope", "i", fixed_ip="10.0.0.9") is None
