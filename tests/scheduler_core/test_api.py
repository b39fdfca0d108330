"""Behaviour of the drover.scheduler_core Python API (Nova semantics, claims, explain)."""

from __future__ import annotations

import pytest

from drover import scheduler_core as sc
from drover.scheduling import reference as ref


def table(**cfg: object) -> sc.HostTable:
    return sc.HostTable(sc.SchedulerConfig(seed=1, **cfg))  # type: ignore[arg-type]


def test_defaults_and_names() -> None:
    cfg = sc.SchedulerConfig()
    assert cfg.enabled_filters == [
        "RamFilter",
        "CoreFilter",
        "DiskFilter",
        "TraitsFilter",
        "ComputeFilter",
        "AvailabilityZoneFilter",
        "ComputeCapabilitiesFilter",
        "ImagePropertiesFilter",
        "ServerGroupAntiAffinityFilter",
        "ServerGroupAffinityFilter",
    ]
    assert cfg.enabled_filters == ref.DEFAULT_FILTERS
    assert cfg.weighers["IoOpsWeigher"] == -1.0
    assert cfg.weighers["BuildFailureWeigher"] == 1000000.0
    assert cfg.weighers["NumInstancesWeigher"] == 0.0
    assert len(sc.SchedulerConfig.all_filters()) == 17
    with pytest.raises(ValueError):
        sc.SchedulerConfig(enabled_filters=["NoSuchFilter"])
    with pytest.raises(ValueError):
        sc.SchedulerConfig(weighers={"NoSuchWeigher": 1.0})


def test_ram_with_allocation_ratio_and_reserved() -> None:
    t = table()
    # usable = (4096 - 1024) * 1.5 = 4608
    t.upsert_host("a", vcpus=4, memory_mb=4096, disk_gb=100, reserved_memory_mb=1024)
    assert t.explain(sc.RequestSpec(["x"], 1, 4608)).selections[0].host == "a"
    res = t.explain(sc.RequestSpec(["x"], 1, 4609))
    assert res.selections == []
    assert res.explanation.summary == "no valid host: 1 hosts; RamFilter rejected 1"
    [rej] = [r for r in res.explanation.rejections if r.rejected]
    assert rej.sample_reasons == ["a: free ram 4608 MB < 4609 MB requested"]


def test_core_and_disk_filters() -> None:
    t = table()
    t.upsert_host("a", vcpus=2, memory_mb=8192, disk_gb=20, cpu_allocation_ratio=2.0)
    assert t.explain(sc.RequestSpec(["x"], 4, 512)).selections
    assert not t.explain(sc.RequestSpec(["x"], 5, 512)).selections
    # disk = root + ephemeral + ceil(swap / 1024) = 10 + 5 + 2 = 17
    assert t.explain(sc.RequestSpec(["x"], 1, 512, root_gb=10, ephemeral_gb=5, swap_mb=1025)).selections
    res = t.explain(sc.RequestSpec(["x"], 1, 512, root_gb=10, ephemeral_gb=10, swap_mb=1))
    assert res.explanation.summary == "no valid host: 1 hosts; DiskFilter rejected 1"


def test_compute_filter_and_summary_shape() -> None:
    t = table()
    for i in range(10):
        t.upsert_host(
            f"h{i}",
            vcpus=8,
            memory_mb=1024 if i < 6 else 65536,
            disk_gb=100,
            availability_zone="az1" if i < 8 else "az2",
        )
    t.set_up("h6", False)
    t.upsert_host("h7", vcpus=8, memory_mb=65536, disk_gb=100, enabled=False, availability_zone="az1")
    with pytest.raises(sc.NoValidHost) as exc:
        t.select(sc.RequestSpec(["x"], 1, 2048, availability_zone="az3"))
    assert str(exc.value) == exc.value.explanation.summary
    assert exc.value.explanation.summary == (
        "no valid host: 10 hosts; RamFilter rejected 6, ComputeFilter rejected 2, AvailabilityZoneFilter rejected 2"
    )
    e = t.explain(sc.RequestSpec(["x"], 1, 2048, availability_zone="az2")).explanation
    assert e.hosts_passed == 2 and e.hosts_total == 10
    with pytest.raises(sc.UnknownHostError):
        t.set_up("nope", True)
    with pytest.raises(KeyError):
        t.set_up("nope", True)
    with pytest.raises(ValueError):
        t.claim("i", "nope", vcpus=1, memory_mb=1, disk_gb=1)


def test_weighers_spread_by_free_ram_and_explain_weights() -> None:
    t = table()
    t.upsert_host("small", vcpus=8, memory_mb=8192, disk_gb=100)
    t.upsert_host("big", vcpus=8, memory_mb=16384, disk_gb=100)
    res = t.explain(sc.RequestSpec(["x"], 1, 1024))
    assert res.selections[0].host == "big"
    assert res.selections[0].alternate_hosts == ["small"]
    top = res.explanation.top_hosts
    assert [h.host for h in top] == ["big", "small"]
    # Nova 22+: RAMWeigher normalises from 0 (free RAM / the most free), not min-max
    assert top[0].weights["RAMWeigher"] == 1.0 and top[1].weights["RAMWeigher"] == 8192 / 16384
    assert top[0].weight == pytest.approx(sum(top[0].weights.values()))


def test_build_failures_weigh_as_nova_reports_them_and_aggregates_override_multipliers() -> None:
    t = table()
    t.upsert_host("failing", vcpus=8, memory_mb=8192, disk_gb=100, failed_builds=3)
    t.upsert_host("fine", vcpus=8, memory_mb=8192, disk_gb=100)
    top = t.explain(sc.RequestSpec(["x"], 1, 512)).explanation.top_hosts
    assert [(h.host, h.weights["BuildFailureWeigher"]) for h in top] == [("fine", 0.0), ("failing", -1000000.0)]
    # a per-aggregate build_failure_weight_multiplier (Nova's get_weight_multiplier) tames it
    t.upsert_host(
        "failing",
        vcpus=8,
        memory_mb=8192,
        disk_gb=100,
        failed_builds=3,
        generation=1,
        aggregates=[("tolerant", {"build_failure_weight_multiplier": "0.5"})],
    )
    weights = {
        h.host: h.weights["BuildFailureWeigher"] for h in t.explain(sc.RequestSpec(["x"], 1, 512)).explanation.top_hosts
    }
    assert weights == {"fine": 0.0, "failing": -0.5}


def test_traits_filter_explains_the_missing_trait() -> None:
    t = table()
    t.upsert_host("plain", vcpus=8, memory_mb=8192, disk_gb=100)
    t.upsert_host("avx", vcpus=8, memory_mb=8192, disk_gb=100, traits=["HW_CPU_X86_AVX2"])
    spec = sc.RequestSpec(["x"], 1, 512, flavor_extra_specs={"trait:HW_CPU_X86_AVX2": "required"})
    res = t.explain(spec)
    assert [s.host for s in res.selections] == ["avx"]
    [rej] = [r for r in res.explanation.rejections if r.rejected]
    assert (rej.filter, rej.sample_reasons) == ("TraitsFilter", ["plain: lacks trait HW_CPU_X86_AVX2"])


def test_io_ops_weigher_negative_multiplier_and_build_failures() -> None:
    t = table()
    t.upsert_host("busy", vcpus=8, memory_mb=8192, disk_gb=100, io_ops=5)
    t.upsert_host("idle", vcpus=8, memory_mb=8192, disk_gb=100, io_ops=0)
    assert t.explain(sc.RequestSpec(["x"], 1, 512)).selections[0].host == "idle"
    t.upsert_host("idle", vcpus=8, memory_mb=8192, disk_gb=100, io_ops=0, failed_builds=2)
    assert t.explain(sc.RequestSpec(["x"], 1, 512)).selections[0].host == "busy"


def test_select_claims_release_returns() -> None:
    t = table()
    t.upsert_host("a", vcpus=4, memory_mb=4096, disk_gb=40, ram_allocation_ratio=1.0, cpu_allocation_ratio=1.0)
    spec = sc.RequestSpec(["i1"], 2, 2048, root_gb=20)
    assert t.select(spec).selections[0].host == "a"
    [h] = t.hosts(["a"])
    assert (h.vcpus_used, h.memory_mb_used, h.disk_gb_used, h.num_instances, h.io_ops) == (2, 2048, 20, 1, 1)
    assert t.claim_host("i1") == "a"
    t.select(sc.RequestSpec(["i2"], 2, 2048, root_gb=20))
    with pytest.raises(sc.NoValidHost):
        t.select(sc.RequestSpec(["i3"], 1, 1))
    assert t.release("i1") is True
    assert t.release("i1") is False
    [h] = t.hosts(["a"])
    assert (h.vcpus_used, h.memory_mb_used, h.disk_gb_used, h.num_instances, h.io_ops) == (2, 2048, 20, 1, 1)
    assert t.select(sc.RequestSpec(["i3"], 1, 1)).selections[0].host == "a"


def test_claims_survive_upsert_and_counters_reset() -> None:
    t = table()
    t.upsert_host("a", vcpus=4, memory_mb=4096, disk_gb=40, generation=1)
    t.claim("i1", "a", vcpus=3, memory_mb=1000, disk_gb=10)
    t.upsert_host("a", vcpus=4, memory_mb=4096, disk_gb=40, num_instances=1, io_ops=0, generation=2)
    [h] = t.hosts()
    assert (h.vcpus_used, h.num_instances, h.io_ops) == (3, 1, 0)
    # stale report: ignored
    assert t.upsert_host("a", vcpus=99, memory_mb=1, disk_gb=1, generation=1) is False
    assert t.hosts()[0].vcpus == 4
    # release after a report: resources back, reported counters untouched
    t.release("i1")
    [h] = t.hosts()
    assert (h.vcpus_used, h.num_instances, h.io_ops) == (0, 1, 0)
    # restore claim may overcommit
    t.claim("big", "a", vcpus=1000, memory_mb=10**6, disk_gb=10**4)
    assert t.hosts()[0].free_vcpus < 0


def test_multi_instance_consumes_and_is_all_or_none() -> None:
    t = table(weighers={"RAMWeigher": 1.0})
    t.upsert_host("a", vcpus=2, memory_mb=2048, disk_gb=100, ram_allocation_ratio=1.0, cpu_allocation_ratio=1.0)
    t.upsert_host("b", vcpus=2, memory_mb=4096, disk_gb=100, ram_allocation_ratio=1.0, cpu_allocation_ratio=1.0)
    res = t.select(sc.RequestSpec(["x1", "x2", "x3"], 1, 1024))
    assert [s.host for s in res.selections] == ["b", "b", "a"]
    with pytest.raises(sc.NoValidHost) as exc:
        t.select(sc.RequestSpec(["y1", "y2"], 1, 1024))
    assert "only 1 of 2 instances could be placed" in exc.value.explanation.summary
    assert t.num_claims() == 3  # nothing claimed for y*
    assert t.claim_host("y1") is None
    # min_count: place what fits
    res = t.select(sc.RequestSpec(["z1", "z2"], 1, 1024, min_count=1))
    assert [s.instance_id for s in res.selections] == ["z1"]


def test_anti_affinity_within_batch_and_affinity() -> None:
    t = table()
    for h in ("a", "b", "c"):
        t.upsert_host(h, vcpus=16, memory_mb=16384, disk_gb=100)
    res = t.explain(sc.RequestSpec(["1", "2", "3"], 1, 512, group_policy="anti-affinity"))
    assert sorted(s.host for s in res.selections) == ["a", "b", "c"]
    res = t.explain(sc.RequestSpec(["1", "2", "3", "4"], 1, 512, group_policy="anti-affinity"))
    assert res.selections == []
    res = t.explain(sc.RequestSpec(["1", "2", "3"], 1, 512, group_policy="affinity"))
    assert len({s.host for s in res.selections}) == 1
    res = t.explain(sc.RequestSpec(["1"], 1, 512, group_policy="affinity", group_hosts=["c"]))
    assert res.selections[0].host == "c"
    res = t.explain(sc.RequestSpec(["1"], 1, 512, group_policy="soft-affinity", group_hosts=["b"]))
    assert res.selections[0].host == "b"
    res = t.explain(sc.RequestSpec(["1"], 1, 512, group_policy="soft-anti-affinity", group_hosts=["a", "b"]))
    assert res.selections[0].host == "c"


def test_same_and_different_host() -> None:
    t = table(enabled_filters=["SameHostFilter", "DifferentHostFilter"])
    for h in ("a", "b", "c"):
        t.upsert_host(h, vcpus=16, memory_mb=16384, disk_gb=100)
    t.claim("vm1", "b", vcpus=1, memory_mb=1, disk_gb=1)
    assert t.explain(sc.RequestSpec(["x"], 1, 1, same_host=["vm1"])).selections[0].host == "b"
    res = t.explain(sc.RequestSpec(["x"], 1, 1, different_host=["vm1"]))
    assert res.selections[0].host != "b"


def test_capabilities_image_aggregates_isolation() -> None:
    t = table(
        enabled_filters=sc.SchedulerConfig.all_filters(),
        isolated_images=["secret-img"],
        isolated_hosts=["iso"],
    )
    t.upsert_host(
        "gpu",
        vcpus=8,
        memory_mb=8192,
        disk_gb=100,
        capabilities={"gpu": "2"},
        cpu_arch="x86_64",
        hypervisor_type="QEMU",
        hypervisor_version=6002000,
        aggregates=[("fast", {"ssd": "true"}), ("tenantA", {"filter_tenant_id": "pA,pB"})],
    )
    t.upsert_host("arm", vcpus=8, memory_mb=8192, disk_gb=100, cpu_arch="aarch64", hypervisor_type="kvm")
    t.upsert_host("iso", vcpus=8, memory_mb=8192, disk_gb=100, cpu_arch="x86_64", hypervisor_type="kvm")
    host = lambda **kw: [s.host for s in t.explain(sc.RequestSpec(["x"], 1, 1, **kw)).selections]  # noqa: E731
    assert host(flavor_extra_specs={"capabilities:gpu": ">= 2"}, project_id="pA") == ["gpu"]
    assert host(flavor_extra_specs={"capabilities:gpu": ">= 3"}, project_id="pA") == []
    assert host(image_properties={"hw_architecture": "aarch64"}) == ["arm"]
    assert host(
        image_properties={"hw_architecture": "amd64", "img_hv_requested_version": ">= 6.2"}, project_id="pB"
    ) == ["gpu"]
    assert host(flavor_extra_specs={"aggregate_instance_extra_specs:ssd": "true"}, project_id="pA") == ["gpu"]
    assert "gpu" not in host(project_id="other")
    assert host(image_id="secret-img") == ["iso"]
    e = t.explain(sc.RequestSpec(["x"], 1, 1, image_id="secret-img", project_id="other")).explanation
    assert {r.filter: r.rejected for r in e.rejections if r.rejected} == {
        "AggregateMultiTenancyIsolation": 1,
        "IsolatedHostsFilter": 1,
    }


def test_ignore_hosts_host_subset_size_and_remove() -> None:
    t = table(host_subset_size=3)
    for i in range(5):
        t.upsert_host(f"h{i}", vcpus=8, memory_mb=8192 * (i + 1), disk_gb=100)
    seen = {t.explain(sc.RequestSpec(["x"], 1, 1)).selections[0].host for _ in range(200)}
    assert seen == {"h4", "h3", "h2"}
    t2 = table()
    for i in range(5):
        t2.upsert_host(f"h{i}", vcpus=8, memory_mb=8192 * (i + 1), disk_gb=100)
    res = t2.explain(sc.RequestSpec(["x"], 1, 1, ignore_hosts=["h4"]))
    assert res.selections[0].host == "h3"
    assert res.explanation.rejections[0].filter == "ignore_hosts"
    assert t2.remove_host("h3") and not t2.remove_host("h3")
    assert "h3" not in t2 and len(t2) == 4
    assert [h.host for h in t2.hosts()] == ["h0", "h1", "h2", "h4"]
    assert t2.explain(sc.RequestSpec(["x"], 1, 1)).selections[0].host == "h4"


def test_memory_budget() -> None:
    t = sc.HostTable()
    for i in range(20000):
        t.upsert_host(
            f"compute-{i:06d}.example.org",
            vcpus=64,
            memory_mb=262144,
            disk_gb=2000,
            availability_zone=f"az{i % 3}",
            aggregates=[(f"rack{i % 40}", {"ssd": "true"})],
        )
    # 100k hosts must fit in 64 MiB: check the per-host cost on 20k
    assert t.memory_bytes() / 20000 * 100000 < 64 * 2**20


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        (dict(root_gb=2**62, ephemeral_gb=2**62), "root_gb must be between 0 and"),
        (dict(root_gb=2**40, ephemeral_gb=2**40), "root_gb + ephemeral_gb + swap_mb / 1024 must be at most"),
        (dict(ephemeral_gb=-1), "ephemeral_gb must be between"),
        (dict(swap_mb=-1), "swap_mb must be between"),
    ],
)
def test_request_sizes_out_of_range_are_value_errors_in_core_and_oracle(sizes: dict[str, int], message: str) -> None:
    for spec in (sc.RequestSpec, ref.RequestSpec):
        with pytest.raises(ValueError, match=message.replace("+", r"\+")):
            spec(["i"], 1, 64, **sizes)


def test_hosts_and_claims_that_would_overflow_are_value_errors() -> None:
    t = sc.HostTable(sc.SchedulerConfig(enabled_filters=[], seed=1))  # overcommit allowed
    with pytest.raises(ValueError, match="disk_gb"):
        t.upsert_host("h", vcpus=4, memory_mb=4096, disk_gb=2**41)
    assert len(t) == 0
    t.upsert_host("h", vcpus=4, memory_mb=4096, disk_gb=2**40)
    for k in range(1024):
        t.claim(f"c{k}", "h", vcpus=0, memory_mb=0, disk_gb=2**40)
    with pytest.raises(ValueError, match="would take its usage past"):
        t.select(sc.RequestSpec(["x"], 0, 0, root_gb=1))
    assert t.num_claims() == 1024 and t.hosts()[0].disk_gb_used == 2**50
