"""The group committer survives a batch that fails as a whole; the watchdog notices dead loops."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from drover.services.common import group_commit
from drover.services.common.group_commit import GroupCommit
from drover.services.common.watchdog import Watchdog
from drover.store import db
from drover.store.tables import NETWORKS


def _add(name: str) -> Any:
    def fn(s: Session) -> str:
        s.connection().execute(insert(NETWORKS).values(id=name, name=name, cidr="10.0.0.0/24", cidr_v6="",
                                                       next_offset=2))
        return name
    return fn


async def test_a_batch_that_never_gets_the_write_lock_fails_alone_and_the_loop_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "gc.db"
    db.upgrade(f"sqlite:///{path}")
    engine = db.make_engine(f"sqlite:///{path}", for_writes=True)

    @event.listens_for(engine, "connect")
    def _short_busy_timeout(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA busy_timeout=50")

    monkeypatch.setattr(group_commit, "LOCK_ATTEMPTS", 2)
    gc = GroupCommit(db.session_factory(engine), threaded=True)
    holder = sqlite3.connect(path)  # another process holding the write lock, as far as SQLite knows
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError, match="locked"):
            await asyncio.wait_for(gc.run(_add("a")), 10)
    finally:
        holder.rollback()
        holder.close()
    assert gc.task is not None and not gc.task.done(), "the commit loop must outlive a failed batch"
    assert await asyncio.wait_for(gc.run(_add("b")), 10) == "b"
    await gc.stop()
    engine.dispose()


async def test_watchdog_turns_health_off_while_a_task_is_dead_and_on_once_restarted() -> None:
    health: list[bool] = []

    async def set_serving(serving: bool) -> None:
        health.append(serving)

    async def doomed() -> None:
        raise RuntimeError("boom")

    async def healthy() -> None:
        await asyncio.sleep(3600)

    tasks = {"t": asyncio.get_running_loop().create_task(doomed())}

    def restart() -> None:
        tasks["t"] = asyncio.get_running_loop().create_task(healthy())

    dog = Watchdog(set_serving, "test", restart_after=0.0)
    dog.watch("loop", lambda: tasks["t"], restart)
    await asyncio.sleep(0)
    assert await dog.check() is False
    assert health == [False] and dog.deaths == 1
    assert await dog.check() is True  # restarted
    assert health == [False, True]
    tasks["t"].cancel()
    await asyncio.sleep(0)
    assert await dog.check() is True, "a cancelled task (a stop) is not a death"


async def test_watchdog_without_restart_stays_not_serving() -> None:
    health: list[bool] = []

    async def set_serving(serving: bool) -> None:
        health.append(serving)

    async def doomed() -> None:
        raise RuntimeError("boom")

    task = asyncio.get_running_loop().create_task(doomed())
    dog = Watchdog(set_serving, "test", restart_after=0.0)
    dog.watch("loop", lambda: task)
    await asyncio.sleep(0)
    assert await dog.check() is False
    assert await dog.check() is False
    assert health == [False]
