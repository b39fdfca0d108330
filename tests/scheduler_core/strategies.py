"""Hypothesis strategies shared by the scheduler_core differential tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from drover import scheduler_core as sc
from drover.scheduling import reference as ref

HOSTS = [f"h{i}" for i in range(10)]
AZS = ["nova", "az1", "az2"]
ARCHS = ["", "x86_64", "amd64", "aarch64", "i386"]
HV_TYPES = ["", "kvm", "qemu", "QEMU", "xen"]
HV_VERSIONS = [0, 2011000, 6002000, 7000000, 7001002]
CAP_KEYS = ["cpu", "gpu", "numa", "cpu_info:vendor"]
CAP_VALUES = ["1", "2", "4", "8", "x", "intel", "amd", "sse avx", "1.5", ""]
AGG_KEYS = [
    "ssd",
    "gpu",
    "availability_zone",
    "filter_tenant_id",
    "filter_tenant_id2",
    "ram_weight_multiplier",
    "io_ops_weight_multiplier",
    "build_failure_weight_multiplier",
    "num_instances_weight_multiplier",
]
AGG_VALUES = ["true", "false", "az1", "az2", "p1", "p1,p2", " p2 ", "1", "4", "-2.5", "0", " 1e1 ", "x"]
TRAITS = ["HW_CPU_X86_AVX2", "HW_CPU_X86_SSE42", "CUSTOM_GPU"]
CPU_INFOS = [
    "",
    "not json",
    '{"vendor": "Intel", "model": "Skylake", "features": ["avx2", "sse4.2"], "maxphysaddr": {"bits": 46}}',
    '{"vendor": "AMD", "topology": {"cores": 8}, "maxphysaddr": {"mode": "emulate", "bits": 48}, "ratio": 1.5}',
    '{"vendor": "Intel", "maxphysaddr": {"bits": "40"}, "flag": true, "none": null}',
    "[1, 2]",
]
SUPPORTED = [("x86_64", "qemu", "hvm"), ("i686", "kvm", "hvm"), ("aarch64", "QEMU", "hvm"), ("x86_64", "xen", "xen")]
PROJECTS = ["", "p1", "p2", "p3"]
OPS_REQS = [
    "1",
    "2",
    "x",
    "intel",
    "= 2",
    "== 4",
    "!= 1",
    ">= 2",
    "<= 4",
    "s== intel",
    "s!= amd",
    "s< j",
    "s>= b",
    "<in> avx",
    "<all-in> sse avx",
    "<or> intel <or> amd",
    "<or> x",
    ">=",
    "true",
    "<or>",
    "= x",
    "1.5",
    "required",
    "forbidden",
    "46",
    ">= 7000000",
    "<in> qemu",
    "s== QEMU",
    "<in> Intel",
]

FILTER_NAMES = sc.SchedulerConfig.all_filters()
WEIGHER_NAMES = [w for w, _ in sc.SchedulerConfig.all_weighers()]


@st.composite
def host_kwargs(draw: st.DrawFn) -> dict[str, Any]:
    vcpus = draw(st.sampled_from([1, 2, 4, 8, 16]))
    mem = draw(st.sampled_from([512, 1024, 2048, 4096, 8192]))
    disk = draw(st.sampled_from([0, 10, 20, 40, 100]))
    kw: dict[str, Any] = dict(
        vcpus=vcpus,
        memory_mb=mem,
        disk_gb=disk,
        reserved_vcpus=draw(st.sampled_from([0, 0, 1])),
        reserved_memory_mb=draw(st.sampled_from([0, 0, 256, 512])),
        reserved_disk_gb=draw(st.sampled_from([0, 0, 5])),
        cpu_allocation_ratio=draw(st.sampled_from([1.0, 1.5, 4.0, 16.0, 0.3])),
        ram_allocation_ratio=draw(st.sampled_from([1.0, 1.5, 0.7, 3.3])),
        disk_allocation_ratio=draw(st.sampled_from([1.0, 1.0, 2.0, 0.9])),
        availability_zone=draw(st.sampled_from(AZS)),
        enabled=draw(st.booleans() | st.just(True)),
        up=draw(st.booleans() | st.just(True)),
        io_ops=draw(st.integers(0, 9)),
        num_instances=draw(st.integers(0, 52)),
        failed_builds=draw(st.sampled_from([0, 0, 0, 1, 3])),
        hypervisor_type=draw(st.sampled_from(HV_TYPES)),
        hypervisor_version=draw(st.sampled_from(HV_VERSIONS)),
        cpu_arch=draw(st.sampled_from(ARCHS)),
        capabilities=draw(st.dictionaries(st.sampled_from(CAP_KEYS), st.sampled_from(CAP_VALUES), max_size=3)),
        aggregates=draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["agg1", "agg2", "agg3"]),
                    st.dictionaries(st.sampled_from(AGG_KEYS), st.sampled_from(AGG_VALUES), max_size=2),
                ),
                max_size=2,
                unique_by=lambda t: t[0],
            )
        ),
        generation=draw(st.integers(0, 3)),
        traits=draw(st.lists(st.sampled_from(TRAITS), max_size=3)),
        cpu_info=draw(st.sampled_from(CPU_INFOS)),
        supported_instances=draw(st.lists(st.sampled_from(SUPPORTED), max_size=3)),
    )
    return kw


# table operations: ("upsert", name, kwargs) | ("remove", name) | ("claim", id, name, v, m, d)
# | ("release", id) | ("set_up", name, bool)
@st.composite
def table_ops(draw: st.DrawFn, max_hosts: int = 8) -> list[tuple[Any, ...]]:
    names = HOSTS[:max_hosts]
    ops: list[tuple[Any, ...]] = []
    for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=max_hosts, unique=True)):
        ops.append(("upsert", name, draw(host_kwargs())))
    extra = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("upsert"), st.sampled_from(names), host_kwargs()),
                st.tuples(st.just("remove"), st.sampled_from(names)),
                st.tuples(
                    st.just("claim"),
                    st.sampled_from(["i1", "i2", "i3", "i4"]),
                    st.sampled_from(names),
                    st.integers(0, 8),
                    st.sampled_from([0, 256, 1024, 4096]),
                    st.integers(0, 30),
                ),
                st.tuples(st.just("release"), st.sampled_from(["i1", "i2", "i3", "i4", "nope"])),
                st.tuples(st.just("set_up"), st.sampled_from(names), st.booleans()),
            ),
            max_size=6,
        )
    )
    return ops + extra


@st.composite
def request_kwargs(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.sampled_from([1, 1, 1, 2, 3]))
    policy = draw(st.sampled_from(["", "", "affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"]))
    extra_keys = st.sampled_from(
        [
            "cpu",
            "gpu",
            "capabilities:cpu",
            "capabilities:numa",
            "capabilities:cpu_info:vendor",
            "hw:cpu_policy",
            "aggregate_instance_extra_specs:ssd",
            "aggregate_instance_extra_specs:gpu",
            "ssd",
            "capabilities:hypervisor_version",
            "capabilities:cpu_info:maxphysaddr:bits",
            "capabilities:cpu_info:topology:cores",
            "capabilities:cpu_info",
            "capabilities:supported_instances",
            "hypervisor_type",
            "free_ram_mb",
            "hw:maxphysaddr_bits",
            "trait:HW_CPU_X86_AVX2",
            "trait:CUSTOM_GPU",
            "trait:HW_CPU_X86_NOPE",
        ]
    )
    image_props = st.dictionaries(
        st.sampled_from(
            [
                "hw_architecture",
                "img_hv_type",
                "hw_vm_mode",
                "img_hv_requested_version",
                "architecture",
                "hw_maxphysaddr_bits",
                "trait:HW_CPU_X86_AVX2",
                "trait:CUSTOM_GPU",
            ]
        ),
        st.sampled_from(
            [
                "x86_64",
                "X86_64",
                "amd64",
                "aarch64",
                "kvm",
                "qemu",
                "hvm",
                "xen",
                "hv",
                ">= 6.0",
                ">=6.2, <7",
                "< 3",
                "== 7.1.2",
                "bogus",
                "",
                "46",
                "47",
                "required",
            ]
        ),
        max_size=3,
    )
    return dict(
        instance_ids=[f"new{i}" for i in range(n)],
        vcpus=draw(st.sampled_from([0, 1, 2, 4, 8])),
        memory_mb=draw(st.sampled_from([0, 256, 512, 1024, 2048, 4096])),
        root_gb=draw(st.sampled_from([0, 1, 10, 20])),
        ephemeral_gb=draw(st.sampled_from([0, 0, 5])),
        swap_mb=draw(st.sampled_from([0, 0, 1, 1024, 1500])),
        project_id=draw(st.sampled_from(PROJECTS)),
        availability_zone=draw(st.sampled_from(["", "", *AZS, "nowhere"])),
        flavor_extra_specs=draw(st.dictionaries(extra_keys, st.sampled_from(OPS_REQS), max_size=2)),
        image_id=draw(st.sampled_from(["", "img-a", "img-b"])),
        image_properties=draw(image_props),
        group_policy=policy,
        group_hosts=draw(st.lists(st.sampled_from([*HOSTS[:8], "gone"]), max_size=3)),
        same_host=draw(st.lists(st.sampled_from(["i1", "i2", "zz"]), max_size=2)),
        different_host=draw(st.lists(st.sampled_from(["i1", "i3", "zz"]), max_size=2)),
        ignore_hosts=draw(st.lists(st.sampled_from(HOSTS[:8]), max_size=2)),
        min_count=draw(st.sampled_from([0, 0, 0, 1, 2])),
        group_max_server_per_host=draw(st.sampled_from([1, 1, 2, 3])),
    )


@st.composite
def config_kwargs(draw: st.DrawFn) -> dict[str, Any]:
    filters = draw(
        st.one_of(
            st.none(),
            st.lists(st.sampled_from(FILTER_NAMES), unique=True, max_size=len(FILTER_NAMES)),
            st.permutations(FILTER_NAMES),
        )
    )
    weighers = draw(
        st.one_of(
            st.none(),
            st.dictionaries(
                st.sampled_from(WEIGHER_NAMES),
                st.sampled_from([0.0, 1.0, -1.0, 2.5, 1000000.0, 0.001, -3.0]),
                max_size=len(WEIGHER_NAMES),
            ),
        )
    )
    isolated_images = draw(st.lists(st.sampled_from(["img-a", "img-c"]), max_size=1))
    isolated_hosts = draw(st.lists(st.sampled_from(HOSTS[:8]), max_size=2))
    return dict(
        enabled_filters=list(filters) if filters is not None else None,
        weighers=weighers,
        max_attempts=draw(st.integers(1, 4)),
        max_io_ops_per_host=draw(st.sampled_from([8, 3])),
        max_instances_per_host=draw(st.sampled_from([50, 10])),
        isolated_images=isolated_images,
        isolated_hosts=isolated_hosts,
        restrict_isolated_hosts_to_isolated_images=draw(st.booleans()),
        # Nova's random pick among the best N: the differential tests check the Rust core's pick is
        # one of the oracle's N best, then let the oracle follow it
        host_subset_size=draw(st.sampled_from([1, 1, 2, 3, 5])),
        seed=1,
    )


def build(cfg_kw: dict[str, Any], ops: list[tuple[Any, ...]]) -> tuple[sc.HostTable, ref.ReferenceScheduler]:
    table = sc.HostTable(sc.SchedulerConfig(**cfg_kw))
    oracle = ref.ReferenceScheduler(ref.Config(**cfg_kw))
    for op in ops:
        apply(table, oracle, op)
    return table, oracle


def apply(table: sc.HostTable, oracle: ref.ReferenceScheduler, op: tuple[Any, ...]) -> None:
    kind = op[0]
    if kind == "upsert":
        a = table.upsert_host(op[1], **op[2])
        b = oracle.upsert_host(op[1], **op[2])
        assert a == b
    elif kind == "remove":
        assert table.remove_host(op[1]) == oracle.remove_host(op[1])
    elif kind == "claim":
        _, iid, host, v, m, d = op
        if host in table:
            table.claim(iid, host, vcpus=v, memory_mb=m, disk_gb=d)
            oracle.claim(iid, host, vcpus=v, memory_mb=m, disk_gb=d)
    elif kind == "release":
        assert table.release(op[1]) == oracle.release(op[1])
    elif kind == "set_up":
        if op[1] in table:
            table.set_up(op[1], op[2])
            oracle.set_up(op[1], op[2])
    else:  # pragma: no cover
        raise AssertionError(kind)
