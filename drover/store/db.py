"""Engine and sessions. SQLite gets WAL and a busy timeout so several processes share it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from drover.store import regexp

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


def _private_file(path: Path) -> None:
    """Create the SQLite file readable by drover's user only (every project's servers are in it; the
    -wal and -shm files SQLite makes take its mode), and tighten one made before."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    st = path.stat()
    if st.st_mode & 0o077 and st.st_uid == os.getuid():
        path.chmod(0o600)


def make_engine(url: str, *, for_writes: bool = False) -> Engine:
    """An engine for ``url``. With SQLite, ``for_writes`` makes every transaction BEGIN IMMEDIATE.

    SQLite (WAL) lets one process write at a time. A deferred transaction that reads
    and then writes fails at once with "database is locked" when another process
    committed in between (busy_timeout cannot help); taking the write lock up front
    makes writers queue on busy_timeout instead. Readers keep deferred transactions
    so they never wait for writers.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_file(Path(parsed.database))
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            if for_writes:
                dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
            # REGEXP in RE2 (linear time), replacing the Python ``re`` one SQLAlchemy installs.
            dbapi_conn.create_function("regexp", 2, regexp.sqlite_regexp, deterministic=True)

        if for_writes:

            @event.listens_for(engine, "begin")
            def _begin_immediate(conn):  # type: ignore[no-untyped-def]
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    """Bring the schema to the newest migration."""
    command.upgrade(alembic_config(url), "head")


def is_current(engine: Engine) -> bool:
    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() == head
