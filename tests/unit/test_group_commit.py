"""Group commit on a real SQLite store: shared transactions, failure isolation, after-commit callbacks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from drover.store import db
from drover.store import models as m
from drover.store.tables import NETWORKS
from services.common.group_commit import GroupCommit


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
    assert gc.batches < 40 + 16  # batched: far fewer transactions than calls, even with the retry
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
