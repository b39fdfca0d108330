"""Read-only lookups of the create and watch paths, as prebuilt Core statements.

Every CreateServer resolves a flavor, an image and a network, and every WatchServer
reads its server once; rows (not ORM objects) are enough for them and cost a
fraction as much. Handlers that change what they read keep using the ORM.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cachetools import TTLCache
from sqlalchemy import Connection, bindparam, or_, select

from drover.store.tables import FLAVORS, IMAGES, INSTANCES, NETWORKS, SERVER_COLUMNS

_FLAVOR_BY_ID = select(FLAVORS).where(FLAVORS.c.id == bindparam("b_ref"))
_FLAVOR_BY_NAME = select(FLAVORS).where(FLAVORS.c.name == bindparam("b_ref"))
_IMAGE_BY_ID = select(IMAGES).where(IMAGES.c.id == bindparam("b_ref"))
_IMAGE_BY_NAME = (select(IMAGES).where(IMAGES.c.name == bindparam("b_ref"), IMAGES.c.status == "active",
                                       or_(IMAGES.c.visibility == "public", IMAGES.c.owner == bindparam("b_project")))
                  .order_by(IMAGES.c.created_at).limit(1))
_DEFAULT_NETWORK = select(NETWORKS.c.id).order_by(NETWORKS.c.name).limit(1)
_SERVER = select(*SERVER_COLUMNS).where(INSTANCES.c.id == bindparam("b_id"))


def flavor(c: Connection, ref: str) -> Any:
    """A flavor by id, else by name; None if neither."""
    return c.execute(_FLAVOR_BY_ID, {"b_ref": ref}).first() or c.execute(_FLAVOR_BY_NAME, {"b_ref": ref}).first()


def image(c: Connection, ref: str, project: str) -> Any:
    """An active image by id, else the oldest active one of that name ``project`` sees; None if neither.
    (By id, the caller still checks the image is visible to it.)"""
    img = (c.execute(_IMAGE_BY_ID, {"b_ref": ref}).first()
           or c.execute(_IMAGE_BY_NAME, {"b_ref": ref, "b_project": project}).first())
    return img if img is not None and img.status == "active" else None


def default_network_id(c: Connection) -> str | None:
    return c.execute(_DEFAULT_NETWORK).scalar_one_or_none()


def server(c: Connection, instance_id: str) -> Any:
    """The instance's row (attributes named as on ``m.Instance``), or None."""
    return c.execute(_SERVER, {"b_id": instance_id}).first()


class Catalog:
    """Flavors, images and the default network as CreateServer resolves them, kept a moment.

    Every create of a burst asks for the same few rows. Only rows found are kept, so a new
    flavor or image is usable at once; this API's own changes to the catalog drop the cache,
    and a deletion elsewhere shows within ``ttl`` seconds (a build that races it is failed by
    the conductor, which looks again).
    """

    def __init__(self, ttl: float = 2.0) -> None:
        self._rows: TTLCache[tuple[str, str], Any] = TTLCache(maxsize=1024, ttl=ttl)

    def _get(self, kind: str, ref: str, load: Callable[[], Any]) -> Any:
        row = self._rows.get((kind, ref))
        if row is None:
            row = load()
            if row is not None:
                self._rows[(kind, ref)] = row
        return row

    def flavor(self, c: Connection, ref: str) -> Any:
        return self._get("flavor", ref, lambda: flavor(c, ref))

    def image(self, c: Connection, ref: str, project: str) -> Any:
        return self._get("image", f"{project}\0{ref}", lambda: image(c, ref, project))

    def default_network_id(self, c: Connection) -> str | None:
        return self._get("network", "", lambda: default_network_id(c))  # type: ignore[no-any-return]

    def clear(self) -> None:
        self._rows.clear()
