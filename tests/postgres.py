"""A throw-away PostgreSQL database for tests, from DROVER_TEST_POSTGRES_URL.

That URL names a role that may create databases (scripts/setup.sh makes one). Without it
the test is skipped, unless DROVER_REQUIRE_POSTGRES=1 (CI), where that is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import sqlalchemy as sa

from tests import prerequisites


def fresh_database(prefix: str) -> Iterator[str]:
    """Yield the URL of a new, empty database; drop it afterwards (use with ``yield from``)."""
    admin = os.environ.get("DROVER_TEST_POSTGRES_URL", "")
    if not admin:
        prerequisites.missing("postgres", "DROVER_TEST_POSTGRES_URL is not set (scripts/setup.sh sets up PostgreSQL)")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    server = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.engine.make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.dispose()
