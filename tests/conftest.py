"""Suite-wide checks: service problems fail the test that caused them; a skip nobody expected fails
the run (a skipped test proves nothing, so a regression must not hide as one)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import prerequisites
from tests.service_logs import check_active_meshes

ALLOWED_SKIPS = Path(__file__).with_name("allowed_skips.txt")
_skips: list[tuple[str, str]] = []


@pytest.fixture(autouse=True)
def _services_stayed_healthy() -> Iterator[None]:
    yield
    check_active_meshes()


def _allowed_patterns() -> list[str]:
    """`<test id glob>  # why it may skip`, one per line (tests/allowed_skips.txt)."""
    lines = ALLOWED_SKIPS.read_text().splitlines() if ALLOWED_SKIPS.exists() else []
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def _expected(nodeid: str, reason: str) -> bool:
    # A missing prerequisite skips only while its DROVER_REQUIRE_* is unset (else it failed).
    if reason.startswith(prerequisites.SKIP_PREFIX) or f" {prerequisites.SKIP_PREFIX} " in f" {reason} ":
        return True
    return any(fnmatch.fnmatchcase(nodeid, p) for p in _allowed_patterns())


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skips.append((report.nodeid, reason.removeprefix("Skipped: ")))


def _unexpected() -> list[tuple[str, str]]:
    return [(n, r) for n, r in _skips if not _expected(n, r)]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _unexpected() and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    unexpected = _unexpected()
    if unexpected:
        terminalreporter.section("unexpected skips (fail the run; list deliberate ones in tests/allowed_skips.txt)",
                                 red=True)
        for nodeid, reason in unexpected:
            terminalreporter.line(f"{nodeid}: {reason}")
