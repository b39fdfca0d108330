"""The chaos harness's short schedule: every service SIGKILLed and restarted three times under
creates and deletes, then nothing lost, duplicated or stuck and every host's accounting right."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from benchmarks import chaos


def test_short_chaos_schedule_loses_nothing(tmp_path: Path) -> None:
    sched = chaos.Schedule(services=list(chaos.SERVICES), kills_per_service=3, rate=6, servers=300, hosts=20,
                           clients=8, delete_fraction=0.3, quiet_timeout=90)
    report = chaos.run(sched, tmp_path / "mesh")
    a = report["audit"]
    summary = json.dumps({k: v for k, v in report.items() if k != "events"}, indent=1)[:4000]
    assert Counter(k["service"] for k in report["kills"]) == {s: 3 for s in chaos.SERVICES}
    assert a["creates_answered"] == sched.servers and a["deletes_answered"] > 0, summary
    assert not chaos.failed(report), summary
    # ERROR only where a killed fake compute took its guests along (found by reconciliation).
    assert a["error"] == a["error_guest_lost"], summary
    chaos.plot(report, tmp_path / "timeline.png")
    assert (tmp_path / "timeline.png").stat().st_size > 10_000


def test_every_service_drains_on_sigterm_under_load(tmp_path: Path) -> None:
    sched = chaos.Schedule(services=list(chaos.SERVICES), kills_per_service=1, rate=6, servers=120, hosts=10,
                           clients=8, delete_fraction=0.3, quiet_timeout=60, signal="term")
    report = chaos.run(sched, tmp_path / "mesh")
    summary = json.dumps({k: v for k, v in report.items() if k != "events"}, indent=1)[:4000]
    assert sorted(k["service"] for k in report["kills"]) == sorted(chaos.SERVICES)
    assert chaos.undrained(report) == [], summary
    assert all(k["stop_s"] < chaos.DRAIN_LIMIT for k in report["kills"]), summary
    assert not chaos.failed(report), summary
    # ERROR only where the fake compute's in-memory guests went with the stopped agent.
    assert report["audit"]["error"] == report["audit"]["error_guest_lost"], summary
