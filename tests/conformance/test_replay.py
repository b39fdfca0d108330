"""Replay the recorded conformance cases (Nova 34.0.0's own answers) against drover.

No Nova needed: each case in ``cases/`` holds the fleet, the requests and what Nova's
scheduler code chose for them (``python -m tests.conformance.record`` made them). drover must
choose the same hosts on every request, and give the same top-10 order with weights equal to
1e-9 relative — the Rust core on every case, the Python reference on the cases it is fast enough
for.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .compare import check, load_recorded, recorded_paths

PATHS = recorded_paths()
SIZES = {int(p.name.split("-")[1].split(".")[0]): p for p in PATHS}


def _assert_agrees(path: Path, engine: str) -> None:
    agreement = check(path, engine)
    n = agreement.requests
    assert n > 0
    assert (agreement.same_hosts, agreement.same_top, agreement.same_weights) == (n, n, n), (
        agreement.line() + "\n" + "\n".join(agreement.differences[:10])
    )


def test_cases_cover_fleets_of_100_to_50000_hosts() -> None:
    assert set(SIZES) == {100, 1000, 10000, 50000}


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_core_agrees_with_nova(path: Path) -> None:
    _assert_agrees(path, "core")


@pytest.mark.parametrize("path", [p for n, p in SIZES.items() if n <= 1000], ids=lambda p: p.name)
def test_reference_agrees_with_nova(path: Path) -> None:
    _assert_agrees(path, "reference")


def test_cases_exercise_what_nova_treats_differently() -> None:
    """The recorded fleets hold what the semantics differ on, and Nova's answers show it."""
    rec = load_recorded(SIZES[1000])
    case, nova = rec["case"], rec["nova"]
    hosts = case["hosts"]
    free_ram = [
        m - r - u
        for m, r, u in zip(hosts["memory_mb"], hosts["reserved_memory_mb"], hosts["memory_mb_used"], strict=True)
    ]
    assert any(f < 0 for f in free_ram)  # overcommitted: RAMWeigher's minval 0 matters
    assert not all(hosts["enabled"]) and not all(hosts["up"])
    assert any(hosts["failed_builds"])
    assert any(len(s) > 1 for s in hosts["supported_instances"])
    metadata_keys = {k for a in case["aggregates"] for k in a["metadata"]}
    assert {"availability_zone", "ram_weight_multiplier", "build_failure_weight_multiplier"} <= metadata_keys
    reqs = case["requests"]
    assert any(len(r["instance_ids"]) > 1 for r in reqs)
    assert any(any(k.startswith("trait:") for k in r["flavor_extra_specs"]) for r in reqs)
    assert any((r["group"] or {}).get("rules") for r in reqs)
    assert any(not n["ok"] for n in nova) and any(n["ok"] for n in nova)
    # Nova's BuildFailureWeigher subtracts: no weight near +1e6
    assert all(w < 1e5 for n in nova for _, w in n["top"])
