"""A mesh test fails on what its services hide: an ERROR or CRITICAL record, a traceback, or an
exit nobody asked for, in any service of a LocalMesh (each service logs to <data_dir>/logs/).

Deliberate ones are allowed by regular expressions matched (re.search) against the whole record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from drover.localmesh import LocalMesh

# runtime.py's format: "%(asctime)s %(levelname)s %(name)s: %(message)s"; gRPC core: "E1202 04:55:00.1 ..."
_RECORD_START = re.compile(r"^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) |(?P<core>[IWEF])\d{4} )")
_BAD_LEVELS = {"ERROR", "CRITICAL"}


def _records(text: str) -> Iterator[str]:
    """Log records: a line in the log format starts one; other lines (a traceback) continue it."""
    current: list[str] = []
    for line in text.splitlines():
        if _RECORD_START.match(line) and current:
            yield "\n".join(current)
            current = []
        current.append(line)
    if current:
        yield "\n".join(current)


def is_problem(record: str) -> bool:
    m = _RECORD_START.match(record)
    if m and (m.group("level") in _BAD_LEVELS or m.group("core") in ("E", "F")):
        return True
    return "Traceback (most recent call last)" in record


class ServiceLogWatch:
    """Reads each service log from where the last check stopped, so a problem is blamed on the test
    during which it was written."""

    def __init__(self, mesh: LocalMesh, allowed: Iterable[str] = ()) -> None:
        self.mesh = mesh
        self.allowed = [re.compile(a) for a in allowed]
        self._offsets: dict[Path, int] = {}
        self._exits_seen = 0

    def allow(self, *patterns: str) -> None:
        self.allowed.extend(re.compile(p) for p in patterns)

    def problems(self) -> list[str]:
        found = []
        for path in sorted(self.mesh.log_dir.glob("*.log")):
            with path.open("rb") as f:
                f.seek(self._offsets.get(path, 0))
                data = f.read()
            # Only whole lines: a record being written is read at the next check.
            end = data.rfind(b"\n") + 1
            self._offsets[path] = self._offsets.get(path, 0) + end
            for record in _records(data[:end].decode(errors="replace")):
                if is_problem(record) and not any(a.search(record) for a in self.allowed):
                    found.append(f"{path.name}: {record}")
        exits = self.mesh.unexpected_exits()
        found += [f"{name} exited with {rc}" for name, rc in exits[self._exits_seen:]]
        self._exits_seen = len(exits)
        return found

    def check(self) -> None:
        found = self.problems()
        if found:
            pytest.fail("service problems (allow deliberate ones in the fixture):\n" + "\n".join(found)[-6000:],
                        pytrace=False)


_ACTIVE: list[ServiceLogWatch] = []


def check_active_meshes() -> None:
    """Called after every test (tests/conftest.py): blame new problems on the test that just ran."""
    found = [p for w in _ACTIVE for p in w.problems()]
    if found:
        pytest.fail("service problems during this test:\n" + "\n".join(found)[-6000:], pytrace=False)


@contextmanager
def watched(mesh: LocalMesh, allowed: Iterable[str] = ()) -> Iterator[ServiceLogWatch]:
    """Watch `mesh` while the block runs (start it inside); stop it at the end and check once more."""
    watch = ServiceLogWatch(mesh, allowed)
    _ACTIVE.append(watch)
    try:
        yield watch
    finally:
        mesh.stop()
        _ACTIVE.remove(watch)
    watch.check()
