"""The machine-speed record every benchmark stores beside its figures."""

from __future__ import annotations

import builtins
from typing import Any

import pytest

from benchmarks import machine_speed as ms


def _check_reading(r: dict[str, Any]) -> None:
    assert set(r) == {"at", "loadavg_1m", "python_loop_ms", "rust_select_us"}
    assert r["at"].endswith("Z")
    py = r["python_loop_ms"]
    assert 0 < py["best"] <= py["median"]
    rust = r["rust_select_us"]
    assert 0 < rust["p50"] <= rust["p99"]


def test_record_has_both_readings_and_the_fixed_definition() -> None:
    speed = ms.MachineSpeed(log=lambda msg: None)
    speed.measure_start()
    speed.measure_end()
    rec = speed.record()
    assert rec["version"] == ms.VERSION
    assert (rec["python_loop_iterations"], rec["rust_select_hosts"], rec["rust_selects"]) == (200_000, 10_000, 1000)
    _check_reading(rec["start"])
    _check_reading(rec["end"])
    assert "python loop" in ms.describe(rec["start"]) and "rust select p50" in ms.describe(rec["start"])


def test_python_loop_is_fixed_work() -> None:
    assert ms.python_loop() == ms.python_loop()  # deterministic checksum: the same work every time


def test_without_the_rust_core_the_reading_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_core(name: str, *args: Any, **kw: Any) -> Any:
        if name == "drover" and "scheduler_core" in (args[2] or ()):
            raise ImportError("no core")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_core)
    r = ms.measure()
    assert r["rust_select_us"] is None
    assert "rust core missing" in ms.describe(r)


def test_scheduler_benchmark_stores_machine_speed(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from benchmarks import scheduler

    out = tmp_path / "sched.json"
    assert scheduler.main(["--hosts", "200", "--iterations", "200", "--oracle-iterations", "1",
                           "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    _check_reading(doc["machine_speed"]["start"])
    _check_reading(doc["machine_speed"]["end"])
    assert "machine speed: start python loop" in capsys.readouterr().out
