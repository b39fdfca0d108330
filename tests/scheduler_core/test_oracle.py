"""Differential tests: drover.scheduler_core (Rust) against drover.scheduling.reference (Python)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drover import scheduler_core as sc
from drover.scheduling import reference as ref

from .strategies import build, config_kwargs, request_kwargs, table_ops

SETTINGS = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _state(table: sc.HostTable, oracle: ref.ReferenceScheduler) -> None:
    rows = table.hosts()
    assert [r.host for r in rows] == oracle.order
    for r in rows:
        hs = oracle.host_states[r.host]
        assert (r.vcpus_used, r.memory_mb_used, r.disk_gb_used) == (hs.vcpus_used, hs.memory_mb_used, hs.disk_gb_used)
        assert (r.num_instances, r.io_ops) == (hs.num_instances, hs.num_io_ops)
        assert r.free_memory_mb == hs.free_ram_mb
        assert r.free_vcpus == hs.free_vcpus
        assert r.free_disk_gb == hs.free_disk_gb
        assert (r.enabled, r.up, r.availability_zone) == (hs.enabled, hs.up, hs.availability_zone)


@SETTINGS
@given(cfg=config_kwargs(), ops=table_ops(), req=request_kwargs())
def test_each_filter_passes_the_same_hosts(cfg: dict[str, Any], ops: list[Any], req: dict[str, Any]) -> None:
    table, oracle = build(cfg, ops)
    _state(table, oracle)
    spec, rspec = sc.RequestSpec(**req), ref.RequestSpec(**req)
    for name in sc.SchedulerConfig.all_filters():
        assert table.debug_filter_hosts(name, spec) == oracle.passing(name, rspec), name


@SETTINGS
@given(cfg=config_kwargs(), ops=table_ops(), req=request_kwargs())
def test_weights_match(cfg: dict[str, Any], ops: list[Any], req: dict[str, Any]) -> None:
    table, oracle = build(cfg, ops)
    spec, rspec = sc.RequestSpec(**req), ref.RequestSpec(**req)
    rust = dict(table.debug_weigh(oracle.order, spec))
    py = {w.obj.host: w.weight for w in oracle.weigh([oracle.host_states[h] for h in oracle.order], rspec)}
    assert rust.keys() == py.keys()
    for h in py:
        assert rust[h] == pytest.approx(py[h], rel=1e-9, abs=1e-9), h


class FollowPicks:
    """The oracle's choice among its best host_subset_size hosts, made the one the Rust core made
    (the two random streams differ): each pick must be one of the oracle's candidates. Without a
    Rust pick to follow (a request that failed) it takes the best and notes the guess."""

    def __init__(self, picks: list[str]) -> None:
        self.picks = list(picks)
        self.guessed = False

    def __call__(self, subset: list[Any]) -> Any:
        hosts = [w.obj.host for w in subset]
        if not self.picks:
            self.guessed = self.guessed or len(subset) > 1
            return subset[0]
        pick = self.picks.pop(0)
        assert pick in hosts, f"the Rust core chose {pick}, not one of the best {len(hosts)}: {hosts}"
        return subset[hosts.index(pick)]


def _follow(oracle: ref.ReferenceScheduler, selections: Any) -> FollowPicks:
    follower = FollowPicks([s.host for s in selections])
    oracle.choose = follower  # type: ignore[method-assign]
    return follower


@SETTINGS
@given(cfg=config_kwargs(), ops=table_ops(), req=request_kwargs(), claim=st.booleans())
def test_select_matches_oracle(cfg: dict[str, Any], ops: list[Any], req: dict[str, Any], claim: bool) -> None:
    table, oracle = build(cfg, ops)
    spec, rspec = sc.RequestSpec(**req), ref.RequestSpec(**req)
    got = table.explain(spec)
    follower = _follow(oracle, got.selections)
    expected = oracle.explain(rspec)
    e = got.explanation
    assert e.hosts_total == expected.hosts_total
    assert bool(got.selections) == expected.ok
    if follower.guessed:
        # a random pick of a request that failed: which hosts the later instances saw (and what
        # they rejected) depends on it, and Rust tells no picks of a failure
        assert not expected.ok and e.summary.startswith("no valid host")
        return
    assert not follower.picks, f"Rust placed more than the oracle: {follower.picks}"
    assert e.hosts_passed == expected.hosts_passed
    assert {r.filter: r.rejected for r in e.rejections if r.rejected} == {
        k: v for k, v in expected.rejections.items() if v
    }
    assert e.hosts_total == e.hosts_passed + sum(r.rejected for r in e.rejections)
    for r in e.rejections:
        assert len(r.sample_reasons) == min(3, r.rejected), r
    assert [(s.instance_id, s.host, s.alternate_hosts) for s in got.selections] == [
        (s.instance_id, s.host, s.alternate_hosts) for s in expected.selections
    ]
    top = e.top_hosts
    assert [t.host for t in top] == [h for h, _ in expected.weighed[:5]]  # the whole list, not a prefix
    for t, (_, w) in zip(top, expected.weighed, strict=False):
        assert t.weight == pytest.approx(w, rel=1e-9, abs=1e-9)
        assert sum(t.weights.values()) == pytest.approx(t.weight, rel=1e-9, abs=1e-9)
    assert e.summary == expected.summary
    if claim and req["instance_ids"]:
        if expected.ok:
            placed = table.select(spec)
            _follow(oracle, placed.selections)
            oracle.select(rspec)
        else:
            with pytest.raises(sc.NoValidHost) as exc:
                table.select(spec)
            assert exc.value.explanation.summary == e.summary
        _state(table, oracle)
        for iid in req["instance_ids"]:
            assert table.release(iid) == oracle.release(iid)
        _state(table, oracle)


@st.composite
def big_table(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Larger tables (so top-k pruning and near-ties matter), resource/weigher fields only."""
    n = draw(st.integers(20, 60))
    ops: list[tuple[Any, ...]] = []
    for i in range(n):
        kw = dict(
            vcpus=draw(st.sampled_from([4, 8])),
            memory_mb=draw(st.sampled_from([4096, 8192, 8192, 16384])),
            disk_gb=draw(st.sampled_from([100, 100, 200])),
            cpu_allocation_ratio=draw(st.sampled_from([1.0, 1.5, 16.0])),
            io_ops=draw(st.sampled_from([0, 0, 1, 2])),
            failed_builds=draw(st.sampled_from([0, 0, 0, 0, 1])),
            hypervisor_version=draw(st.sampled_from([6002000, 6002000, 7000000])),
            enabled=draw(st.sampled_from([True, True, True, False])),
            up=draw(st.sampled_from([True, True, True, False])),
            availability_zone=draw(st.sampled_from(["az1", "az2", "az3"])),
            num_instances=draw(st.sampled_from([0, 10, 49, 50])),
        )
        ops.append(("upsert", f"b{i}", kw))
        if draw(st.booleans()):
            ops.append(
                (
                    "claim",
                    f"c{i}",
                    f"b{i}",
                    draw(st.sampled_from([1, 2])),
                    draw(st.sampled_from([512, 1024, 3000])),
                    draw(st.sampled_from([10, 20])),
                )
            )
    return ops


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    ops=big_table(),
    n=st.integers(1, 4),
    mem=st.sampled_from([512, 1024, 4096]),
    policy=st.sampled_from(["", "anti-affinity", "soft-affinity", "soft-anti-affinity"]),
    weighers=st.one_of(st.none(), st.just({"RAMWeigher": 1.0, "CPUWeigher": 0.3, "IoOpsWeigher": -2.0})),
    az=st.sampled_from(["", "az1", "az2"]),
    subset=st.sampled_from([1, 1, 2, 4]),
    filters=st.one_of(
        st.none(),
        st.permutations(
            [
                "RamFilter",
                "CoreFilter",
                "DiskFilter",
                "ComputeFilter",
                "AvailabilityZoneFilter",
                "IoOpsFilter",
                "NumInstancesFilter",
                "ServerGroupAntiAffinityFilter",
            ]
        ),
    ),
)
def test_large_tables_select_same_hosts(
    ops: list[Any],
    n: int,
    mem: int,
    policy: str,
    weighers: dict[str, float] | None,
    az: str,
    subset: int,
    filters: list[str] | None,
) -> None:
    cfg: dict[str, Any] = dict(seed=1, max_attempts=3, weighers=weighers, enabled_filters=filters,
                               host_subset_size=subset)
    table, oracle = build(cfg, ops)
    req: dict[str, Any] = dict(
        instance_ids=[f"n{i}" for i in range(n)],
        vcpus=1,
        memory_mb=mem,
        root_gb=10,
        group_policy=policy,
        group_hosts=["b1", "b3"] if policy.startswith("soft") else [],
        availability_zone=az,
    )
    got = table.explain(sc.RequestSpec(**req))
    follower = _follow(oracle, got.selections)
    expected = oracle.explain(ref.RequestSpec(**req))
    assert bool(got.selections) == expected.ok
    if follower.guessed:  # see test_select_matches_oracle
        return
    assert [(s.host, s.alternate_hosts) for s in got.selections] == [
        (s.host, s.alternate_hosts) for s in expected.selections
    ]
    assert [t.host for t in got.explanation.top_hosts] == [h for h, _ in expected.weighed[:5]]
    e = got.explanation
    assert e.hosts_passed == expected.hosts_passed
    assert {r.filter: r.rejected for r in e.rejections if r.rejected} == {
        k: v for k, v in expected.rejections.items() if v
    }
    for r in e.rejections:
        assert len(r.sample_reasons) == min(3, r.rejected)
    assert e.summary == expected.summary
