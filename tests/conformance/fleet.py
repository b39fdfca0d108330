"""Realistic fleets and requests for the conformance suite: one neutral JSON form both sides read.

A case is plain JSON (no drover or Nova types) so that it can be recorded once, checked in and
replayed without Nova. Hosts are stored column by column (``hosts[field][i]``), which keeps a
50,000-host case small once gzipped. Everything is drawn from ``random.Random(seed)``: the same
size and seed give the same case.

What a fleet has, because Nova's code treats each differently:

* usage sums (the Placement allocations) that overcommit some hosts past their physical RAM, so
  the compute's ``free_ram_mb`` is negative while Placement (allocation ratio 1.5) still has room;
* disabled and down services, failed builds, I/O load and instance counts;
* availability zones and other aggregates, some with per-aggregate weight multipliers
  (``ram_weight_multiplier`` ...) and some with values Nova cannot parse;
* hypervisor type and version, a nested ``cpu_info`` (vendor, model, features, maxphysaddr),
  ``supported_instances`` lists, compute stats (what flavor ``capabilities:`` keys match) and
  placement traits.

Requests use flavor extra specs (``capabilities:...``, unscoped host attributes,
``hw:maxphysaddr_bits``, ``trait:X=required|forbidden``), image properties (architecture,
hypervisor type, vm mode, version predicates, ``hw_maxphysaddr_bits``, ``trait:X``), server
groups with members already placed (affinity, anti-affinity with ``max_server_per_host``, soft
policies) and multi-instance requests.
"""

from __future__ import annotations

import random
from typing import Any

FORMAT = 1

HOST_FIELDS = (
    "name",
    "vcpus",
    "memory_mb",
    "disk_gb",
    "reserved_vcpus",
    "reserved_memory_mb",
    "reserved_disk_gb",
    "cpu_allocation_ratio",
    "ram_allocation_ratio",
    "disk_allocation_ratio",
    "vcpus_used",
    "memory_mb_used",
    "disk_gb_used",
    "enabled",
    "up",
    "io_ops",
    "num_instances",
    "failed_builds",
    "hypervisor_type",
    "hypervisor_version",
    "cpu_info",
    "supported_instances",
    "stats",
    "traits",
    "aggregates",
)

# (vcpus, memory_mb, disk_gb): a few hardware generations
HARDWARE = [(16, 65536, 500), (32, 131072, 1000), (48, 262144, 2000), (64, 524288, 4000), (96, 786432, 4000)]
HV_VERSIONS = [6002000, 7000000, 8000000, 8002000, 9000000]
CPU_MODELS = [
    ("Intel", "Skylake-Server", ["sse4.2", "avx", "avx2", "avx512f"], 46),
    ("Intel", "Cascadelake-Server", ["sse4.2", "avx", "avx2", "avx512f", "avx512vnni"], 46),
    ("AMD", "EPYC-Rome", ["sse4.2", "avx", "avx2", "sha-ni"], 43),
    ("AMD", "EPYC-Milan", ["sse4.2", "avx", "avx2", "sha-ni", "vaes"], 48),
]
# os-traits names for the features above (Nova's libvirt CPU_TRAITS_MAPPING)
FEATURE_TRAITS = {
    "sse4.2": "HW_CPU_X86_SSE42",
    "avx": "HW_CPU_X86_AVX",
    "avx2": "HW_CPU_X86_AVX2",
    "avx512f": "HW_CPU_X86_AVX512F",
    "avx512vnni": "HW_CPU_X86_AVX512VNNI",
    "sha-ni": "HW_CPU_X86_SHA",
    "vaes": "HW_CPU_X86_AVX512VAES",
}
FLAVORS = [(1, 512, 1), (1, 2048, 20), (2, 4096, 40), (4, 8192, 80), (8, 16384, 160), (8, 65536, 200)]
AZS = ["az1", "az2", "az3"]


def _aggregates(rng: random.Random) -> list[dict[str, Any]]:
    aggs: list[dict[str, Any]] = [{"name": f"{az}-agg", "metadata": {"availability_zone": az}} for az in AZS]
    aggs += [
        {"name": "ssd", "metadata": {"ssd": "true"}},
        {"name": "ram-heavy", "metadata": {"ram_weight_multiplier": "2.5"}},
        {"name": "cpu-light", "metadata": {"cpu_weight_multiplier": "0.5", "ram_weight_multiplier": "1.5"}},
        {"name": "no-io-penalty", "metadata": {"io_ops_weight_multiplier": "0.0"}},
        {"name": "build-failures-tolerated", "metadata": {"build_failure_weight_multiplier": "10.0"}},
        {"name": "newest-first", "metadata": {"hypervisor_version_weight_multiplier": "3"}},
        {"name": "bad-multiplier", "metadata": {"disk_weight_multiplier": "lots"}},
        {"name": "spread", "metadata": {"num_instances_weight_multiplier": "-1.0"}},
    ]
    del rng
    return aggs


def _host(rng: random.Random, i: int, n_aggs: int) -> dict[str, Any]:
    vcpus, mem, disk = rng.choice(HARDWARE)
    reserved_mem = rng.choice([0, 512, 2048, 4096])
    reserved_vcpus = rng.choice([0, 0, 1, 2])
    reserved_disk = rng.choice([0, 0, 10])
    cpu_ratio = rng.choice([1.0, 4.0, 16.0, 16.0])
    ram_ratio = rng.choice([1.0, 1.5, 1.5])
    disk_ratio = rng.choice([1.0, 1.0, 1.5])
    # usage: mostly partial; some overcommitted past physical RAM (negative free_ram_mb), some full
    shape = rng.random()
    if shape < 0.15:
        ram_used = int((mem - reserved_mem) * rng.uniform(1.0, ram_ratio))  # free_ram_mb < 0 when ratio > 1
    elif shape < 0.2:
        ram_used = int((mem - reserved_mem) * ram_ratio)  # Placement full
    else:
        ram_used = int((mem - reserved_mem) * rng.uniform(0.0, 0.95))
    ram_used -= ram_used % 512
    vcpus_used = min(int((vcpus - reserved_vcpus) * cpu_ratio), rng.randint(0, vcpus * 3))
    disk_used = min(int((disk - reserved_disk) * disk_ratio), rng.randint(0, disk))
    num_instances = rng.randint(0, 60)
    vendor, model, features, bits = rng.choice(CPU_MODELS)
    hv_type = rng.choice(["QEMU", "QEMU", "QEMU", "kvm"]) if rng.random() > 0.02 else "xen"
    arch = "x86_64" if rng.random() > 0.05 else "aarch64"
    supported = [[arch, hv_type.lower(), "hvm"]]
    if arch == "x86_64" and rng.random() < 0.3:
        supported.append(["i686", hv_type.lower(), "hvm"])
    traits = sorted({FEATURE_TRAITS[f] for f in features} | {"COMPUTE_VOLUME_MULTI_ATTACH"})
    if rng.random() < 0.1:
        traits.append("CUSTOM_GPU")
    aggs: list[int] = []
    if rng.random() < 0.85:
        aggs.append(rng.randrange(len(AZS)))  # at most one AZ aggregate
    for j in range(len(AZS), n_aggs):
        if rng.random() < 0.12:
            aggs.append(j)
    stats: dict[str, str] = {}
    if rng.random() < 0.3:
        stats["numa_nodes"] = str(rng.choice([1, 2, 4]))
    if rng.random() < 0.2:
        stats["gpu"] = rng.choice(["t4", "a100"])
    return {
        "name": f"cmp{i:05d}",
        "vcpus": vcpus,
        "memory_mb": mem,
        "disk_gb": disk,
        "reserved_vcpus": reserved_vcpus,
        "reserved_memory_mb": reserved_mem,
        "reserved_disk_gb": reserved_disk,
        "cpu_allocation_ratio": cpu_ratio,
        "ram_allocation_ratio": ram_ratio,
        "disk_allocation_ratio": disk_ratio,
        "vcpus_used": vcpus_used,
        "memory_mb_used": ram_used,
        "disk_gb_used": disk_used,
        "enabled": rng.random() > 0.04,
        "up": rng.random() > 0.03,
        "io_ops": rng.choice([0, 0, 0, 1, 2, 3, 5, 8]),
        "num_instances": num_instances,
        "failed_builds": rng.choice([0] * 12 + [1, 2, 5]),
        "hypervisor_type": hv_type,
        "hypervisor_version": rng.choice(HV_VERSIONS),
        "cpu_info": {
            "arch": arch,
            "vendor": vendor,
            "model": model,
            "features": features,
            "topology": {"sockets": 2, "cores": vcpus // 4, "threads": 2},
            "maxphysaddr": {"mode": "passthrough", "bits": bits},
        },
        "supported_instances": supported,
        "stats": stats,
        "traits": traits,
        "aggregates": aggs,
    }


def _request(rng: random.Random, i: int, host_names: list[str]) -> dict[str, Any]:
    vcpus, mem, disk = rng.choice(FLAVORS)
    n = rng.choice([1] * 7 + [2, 3, 5])
    extra: dict[str, str] = {}
    image: dict[str, str] = {}
    r = rng.random()
    if r < 0.1:
        extra["capabilities:hypervisor_version"] = rng.choice([">= 7000000", ">= 8002000", "< 8000000"])
    elif r < 0.2:
        extra["capabilities:cpu_info:vendor"] = rng.choice(["s== Intel", "s== AMD", "<or> AMD <or> Intel"])
    elif r < 0.25:
        extra["capabilities:cpu_info:features"] = "<in> avx512f"
    elif r < 0.3:
        extra["capabilities:cpu_info:maxphysaddr:bits"] = ">= 46"
    elif r < 0.35:
        extra["hypervisor_type"] = "s== QEMU"  # unscoped: a HostState attribute
    elif r < 0.4:
        extra["capabilities:numa_nodes"] = ">= 2"  # a compute stat
    elif r < 0.43:
        extra["hw:maxphysaddr_bits"] = rng.choice(["43", "46", "48"])
    r = rng.random()
    if r < 0.1:
        extra["trait:HW_CPU_X86_AVX2"] = "required"
    elif r < 0.15:
        extra["trait:HW_CPU_X86_AVX512F"] = "forbidden"
    elif r < 0.18:
        extra["trait:CUSTOM_GPU"] = "required"
    r = rng.random()
    if r < 0.2:
        image["hw_architecture"] = rng.choice(["x86_64", "x86_64", "aarch64", "i686"])
    elif r < 0.3:
        image["img_hv_type"] = rng.choice(["qemu", "kvm", "xen"])
        image["hw_vm_mode"] = "hvm"
    elif r < 0.35:
        image["hw_architecture"] = "x86_64"
        image["img_hv_requested_version"] = rng.choice([">= 8.0", ">= 7.0, < 9.0"])
    elif r < 0.4:
        image["hw_architecture"] = "x86_64"
        image["hw_maxphysaddr_bits"] = rng.choice(["43", "46", "48"])
    elif r < 0.43:
        image["trait:HW_CPU_X86_SHA"] = "required"
    group: dict[str, Any] | None = None
    r = rng.random()
    if r < 0.25:
        policy = rng.choice(["affinity", "anti-affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"])
        members = [[f"member-{i}-{k}", rng.choice(host_names)] for k in range(rng.randint(0, 4))]
        if policy == "affinity" and members:
            members = [[m[0], members[0][1]] for m in members]
        if policy.endswith("affinity") and len(members) > 1 and rng.random() < 0.5:
            members[1][1] = members[0][1]  # two members on one host
        rules = {"max_server_per_host": rng.choice([2, 3])} if policy == "anti-affinity" and rng.random() < 0.5 else {}
        group = {"policy": policy, "members": members, "rules": rules}
    return {
        "instance_ids": [f"req{i}-inst{k}" for k in range(n)],
        "vcpus": vcpus,
        "memory_mb": mem,
        "root_gb": disk,
        "ephemeral_gb": rng.choice([0, 0, 0, 10]),
        "availability_zone": rng.choice(["", "", "", *AZS]),
        "flavor_extra_specs": extra,
        "image_properties": image,
        "group": group,
    }


def generate_case(n_hosts: int, seed: int, n_requests: int = 50) -> dict[str, Any]:
    rng = random.Random(f"{seed}:{n_hosts}")
    aggregates = _aggregates(rng)
    hosts = [_host(rng, i, len(aggregates)) for i in range(n_hosts)]
    names = [h["name"] for h in hosts]
    return {
        "format": FORMAT,
        "seed": seed,
        "config": {"host_subset_size": 1, "max_attempts": 3},
        "aggregates": aggregates,
        "hosts": {f: [h[f] for h in hosts] for f in HOST_FIELDS},
        "requests": [_request(rng, i, names) for i in range(n_requests)],
    }


def host_rows(case: dict[str, Any]) -> list[dict[str, Any]]:
    """The column store back as one dict per host, in table order."""
    cols = case["hosts"]
    return [dict(zip(HOST_FIELDS, vals, strict=True)) for vals in zip(*(cols[f] for f in HOST_FIELDS), strict=True)]
