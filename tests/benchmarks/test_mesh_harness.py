"""The mesh load harness end to end at a tiny size: a real mesh, 20 servers, JSON and plots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_mesh_harness_tiny(tmp_path: Path) -> None:
    out = tmp_path / "mesh.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.mesh", "--servers", "20", "--concurrency", "4", "--hosts", "5",
         "--json", str(out), "--plots", str(tmp_path), "--duration-limit", "90", "--settle-timeout", "20",
         "--sample", "20", "--quiet"],
        cwd=REPO, capture_output=True, text=True, timeout=110,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    res = json.loads(out.read_text())

    for key in ("servers", "hosts", "concurrency", "creates_per_s", "accepted_per_s", "create_p50_ms",
                "create_p99_ms", "select_p99_ms", "stage_ms", "errors", "elapsed_s", "machine", "final_states",
                "timeline", "git"):
        assert key in res, key
    assert (res["servers"], res["hosts"], res["concurrency"]) == (20, 5, 4)
    assert res["final_states"] == {"ACTIVE": 20}
    assert res["active"] == 20 and res["errors"] == {} and not res["aborted"]
    assert res["creates_per_s"] > 0 and res["accepted_per_s"] > 0
    assert 0 < res["create_p50_ms"] <= res["create_p99_ms"]
    assert res["select_p99_ms"] is not None and res["select_p99_ms"] > 0
    assert res["machine"]["nproc"] >= 1 and res["machine"]["python"]
    for stage in ("api_accept", "conductor_pickup", "select", "compute_pickup", "spawn", "total"):
        s = res["stage_ms"][stage]
        assert s["n"] > 0 and s["p50"] <= s["p95"] <= s["p99"], stage
    assert res["stage_ms"]["total"]["n"] == 20
    assert sum(res["timeline"]["active"]) == 20 and sum(res["timeline"]["accepted"]) == 20
    for png in res["plots"]:
        assert Path(png).is_file() and Path(png).stat().st_size > 1000
