"""Group commit on a real SQLite store: shared transactions, failure isolation, after-commit callbacks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from drover.services.common.group_commit import GroupCommit
from drover.store import db
from drover.store import models as m
from drover.store.tables import NETWORKS


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'gc.db'}"
    db.upgrade(url)
    engine = db.make_engine(url, for_writes=True)
    yield db.session_factory(engine)
    engine.dispose()


def _add(name: str, fail: bool = False):  # type: ignore[no-untyped-def]
    def fn(s: Session) -> str:
        s.connection().execute(insert(NETWORKS).values(id=name, name=name, cidr="10.0.0.0/24", cidr_v6="",
                                                       next_offset=2))
        if fail:
            raise ValueError(f"{name} is bad")
        return name
    return fn


def _names(sessions: sessionmaker[Session]) -> set[str]:
    with sessions() as s:
        return set(s.execute(select(m.Network.name)).scalars())


@pytest.mark.parametrize("threaded", [False, True])
async def test_concurrent_work_shares_transactions_and_a_bad_one_sinks_alone(
        sessions: sessionmaker[Session], threaded: bool) -> None:
    rollbacks: list[int] = []
    gc = GroupCommit(sessions, max_batch=16, on_rollback=lambda: rollbacks.append(1), threaded=threaded)
    try:
        jobs = [gc.run(_add(f"n{i}", fail=(i == 7))) for i in range(40)]
        results = await asyncio.gather(*jobs, return_exceptions=True)
    finally:
        await gc.stop()
    assert isinstance(results[7], ValueError) and "n7 is bad" in str(results[7])
    assert [r for i, r in enumerate(results) if i != 7] == [f"n{i}" for i in range(40) if i != 7]
    assert _names(sessions) == {f"n{i}" for i in range(40) if i != 7}
    # all 40 wait in one loop turn: 3 transactions of at most 16, and the one holding n7 retried
    # alone (16 more); one call per transaction would be 40
    assert gc.batches <= -(-40 // 16) + 16, gc.batches
    assert rollbacks  # callers that cache what a transaction wrote were told


@pytest.mark.parametrize("threaded", [False, True])
async def test_after_commit_callbacks_run_once_committed_and_never_on_rollback(
        sessions: sessionmaker[Session], threaded: bool) -> None:
    gc = GroupCommit(sessions, threaded=threaded)
    seen: list[tuple[str, int, int]] = []

    def work(name: str, fail: bool):  # type: ignore[no-untyped-def]
        def fn(s: Session) -> None:
            _add(name)(s)
            # The callback sees the committed row from another session.
            gc.after_commit(lambda: seen.append((name, _count(sessions, name), threading.get_ident())))
            if fail:
                raise RuntimeError("no")
        return fn

    try:
        ok = gc.run(work("good", False))
        bad = gc.run(work("bad", True))
        results = await asyncio.gather(ok, bad, return_exceptions=True)
    finally:
        await gc.stop()
    assert results[0] is None and isinstance(results[1], RuntimeError)
    # Once, after the commit, on the event loop's thread (even when the transaction ran in a worker).
    assert seen == [("good", 1, threading.get_ident())]


def _count(sessions: sessionmaker[Session], name: str) -> int:
    with sessions() as s:
        return int(s.execute(select(func.count()).select_from(m.Network).where(m.Network.name == name)).scalar_one())


def _net(name: str) -> dict[str, object]:
    return dict(id=name, name=name, cidr="10.0.0.0/24", cidr_v6="", next_offset=2)


@pytest.mark.parametrize("threaded", [False, True])
async def test_deferred_inserts_share_one_statement_and_a_bad_row_sinks_only_its_caller(
        sessions: sessionmaker[Session], threaded: bool) -> None:
    gc = GroupCommit(sessions, max_batch=64, threaded=threaded)

    def defer(name: str):  # type: ignore[no-untyped-def]
        def fn(s: Session) -> str:
            gc.insert_later(NETWORKS, [_net(name)])
            return name
        return fn

    statements: list[str] = []
    engine = sessions.kw["bind"]
    listener = lambda *a: statements.append(a[2])  # noqa: E731  (conn, cursor, statement, ...)
    event.listen(engine, "before_cursor_execute", listener)
    try:
        # "dup" twice: the second copy violates the primary key at the shared insert.
        names = [f"d{i}" for i in range(10)] + ["dup", "dup"]
        results = await asyncio.gather(*(gc.run(defer(n)) for n in names), return_exceptions=True)
        statements.clear()
        await asyncio.gather(*(gc.run(defer(f"e{i}")) for i in range(10)))
    finally:
        event.remove(engine, "before_cursor_execute", listener)
        await gc.stop()
    assert results[:11] == names[:11] and isinstance(results[11], Exception)  # alone on retry, only it fails
    assert _names(sessions) == {*names[:11], *(f"e{i}" for i in range(10))}
    assert sum(1 for st in statements if st.lstrip().upper().startswith("INSERT")) == 1  # 10 rows, one INSERT


async def test_flush_makes_deferred_rows_visible_to_later_reads_in_the_transaction(
        sessions: sessionmaker[Session]) -> None:
    gc = GroupCommit(sessions)
    seen: list[int] = []

    def first(s: Session) -> None:
        gc.insert_later(NETWORKS, [_net("early")])

    def second(s: Session) -> None:
        gc.flush_inserts(s)
        seen.append(int(s.execute(select(func.count()).select_from(m.Network)
                                  .where(m.Network.name == "early")).scalar_one()))

    try:
        await asyncio.gather(gc.run(first), gc.run(second))
    finally:
        await gc.stop()
    assert seen == [1]
