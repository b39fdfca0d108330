"""Read-only lookups of the create and watch paths, as prebuilt Core statements.

Every CreateServer resolves a flavor, an image and a network, and every WatchServer
reads its server once; rows (not ORM objects) are enough for them and cost a
fraction as much. Handlers that change what they read keep using the ORM.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, select

from drover.store.tables import FLAVORS, IMAGES, INSTANCES, NETWORKS, SERVER_COLUMNS

_FLAVOR_BY_ID = select(FLAVORS).where(FLAVORS.c.id == bindparam("b_ref"))
_FLAVOR_BY_NAME = select(FLAVORS).where(FLAVORS.c.name == bindparam("b_ref"))
_IMAGE_BY_ID = select(IMAGES).where(IMAGES.c.id == bindparam("b_ref"))
_IMAGE_BY_NAME = (select(IMAGES).where(IMAGES.c.name == bindparam("b_ref"), IMAGES.c.status == "active")
                  .order_by(IMAGES.c.created_at).limit(1))
_DEFAULT_NETWORK = select(NETWORKS.c.id).order_by(NETWORKS.c.name).limit(1)
_SERVER = select(*SERVER_COLUMNS).where(INSTANCES.c.id == bindparam("b_id"))


def flavor(c: Connection, ref: str) -> Any:
    """A flavor by id, else by name; None if neither."""
    return c.execute(_FLAVOR_BY_ID, {"b_ref": ref}).first() or c.execute(_FLAVOR_BY_NAME, {"b_ref": ref}).first()


def image(c: Connection, ref: str) -> Any:
    """An active image by id, else the oldest active one of that name; None if neither."""
    img = c.execute(_IMAGE_BY_ID, {"b_ref": ref}).first() or c.execute(_IMAGE_BY_NAME, {"b_ref": ref}).first()
    return img if img is not None and img.status == "active" else None


def default_network_id(c: Connection) -> str | None:
    return c.execute(_DEFAULT_NETWORK).scalar_one_or_none()


def server(c: Connection, instance_id: str) -> Any:
    """The instance's row (attributes named as on ``m.Instance``), or None."""
    return c.execute(_SERVER, {"b_id": instance_id}).first()
