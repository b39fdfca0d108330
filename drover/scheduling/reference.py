"""Pure-Python reference FilterScheduler: the oracle for ``drover.scheduler_core``.

Plain and readable on purpose, in Nova's style (``nova/scheduler/filters/*.py``,
``nova/scheduler/weights/*.py``, ``nova/scheduler/filter_scheduler.py``): one small class per filter
and per weigher, a ``HostState`` per host, ``host_passes`` / ``_weigh_object``, min-max
normalisation, ``host_subset_size`` random choice among the best and ``_consume_selected_host`` for
multi-instance requests. Same model and semantics as the Rust core (see docs/architecture.md):

* usable resource = (total - reserved) * allocation_ratio - used, "used" being the sum of claims;
  a host passes RamFilter/CoreFilter/DiskFilter if usable >= requested;
* a claim (or a pick earlier in the same batch) also bumps num_instances and io_ops;
* hosts are kept in table order (a removed host's slot is taken by the last host, like the Rust
  ``swap_remove``); ties between equal weights go to the earlier host (Python's stable sort).

It is slow (O(hosts) Python per filter); use it for tests and the benchmark's comparison only.
"""

from __future__ import annotations

import dataclasses
import json
import math
import operator
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

# ---------------------------------------------------------------------------------------------
# nova.scheduler.filters.extra_specs_ops
# ---------------------------------------------------------------------------------------------


def _float(x: str) -> float | None:
    try:
        return float(x)
    except ValueError:
        return None


def _num(f: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    def op(x: str, y: str) -> bool:
        a, b = _float(x), _float(y)
        if a is None or b is None:
            return False
        return f(a, b)

    return op


_op_methods: dict[str, Callable[[str, Any], bool]] = {
    "=": _num(lambda x, y: x >= y),
    "<in>": lambda x, y: y in x,
    "<all-in>": lambda x, y: all(val in x for val in y),
    "==": _num(lambda x, y: x == y),
    "!=": _num(lambda x, y: x != y),
    ">=": _num(lambda x, y: x >= y),
    "<=": _num(lambda x, y: x <= y),
    "s==": operator.eq,
    "s!=": operator.ne,
    "s<": operator.lt,
    "s<=": operator.le,
    "s>": operator.gt,
    "s>=": operator.ge,
}


def match(value: str, req: str) -> bool:
    """Nova's ``extra_specs_ops.match``; returns False where Nova would raise."""
    words = req.split()
    op = method = None
    if words:
        op = words.pop(0)
        method = _op_methods.get(op)
    if op != "<or>" and not method:
        return value == req
    if op == "<or>":  # Ex: <or> v1 <or> v2 <or> v3
        while True:
            if not words:
                return False
            if words.pop(0) == value:
                return True
            if not words:
                break
            words.pop(0)  # remove a keyword <or>
            if not words:
                break
        return False
    assert method is not None
    if words:
        if op == "<all-in>":  # requires a list not a string
            return method(value, words)
        return method(value, words[0])
    return False


# ---------------------------------------------------------------------------------------------
# image property helpers (nova.objects.fields canonicalize, versionutils)
# ---------------------------------------------------------------------------------------------

_ARCH_ALIASES = {
    "i386": "i686",
    "i486": "i686",
    "i586": "i686",
    "x86_32": "i686",
    "ia32": "i686",
    "amd64": "x86_64",
    "x64": "x86_64",
    "x86-64": "x86_64",
    "arm64": "aarch64",
    "ppc64el": "ppc64le",
}


def canon_arch(s: str) -> str:
    s = s.strip().lower()
    return _ARCH_ALIASES.get(s, s)


def canon_hv_type(s: str) -> str:
    s = s.strip().lower()
    return "xen" if s == "xapi" else s


def canon_vm_mode(s: str) -> str:
    s = s.strip().lower()
    return {"pv": "xen", "hv": "hvm", "baremetal": "hvm"}.get(s, s)


def version_parts(v: int) -> list[int]:
    """``versionutils.convert_version_to_str`` as numbers: 6002001 -> [6, 2, 1]."""
    out: list[int] = []
    while v > 0:
        out.insert(0, v % 1000)
        v //= 1000
    return out


def _parse_version(s: str) -> list[int] | None:
    if not s:
        return None
    parts = s.split(".")
    if any(not p or len(p) > 9 or not (p.isascii() and p.isdigit()) for p in parts):
        return None
    return [int(p) for p in parts]


def _cmp(a: list[int], b: list[int]) -> int:
    n = max(len(a), len(b))
    aa = a + [0] * (n - len(a))
    bb = b + [0] * (n - len(b))
    return (aa > bb) - (aa < bb)


def version_satisfies(predicate: str, version: list[int]) -> bool | None:
    """``">= 6.0, < 7"`` against a version; None if the predicate is malformed."""
    ops = [
        ("<=", lambda c: c <= 0),
        (">=", lambda c: c >= 0),
        ("==", lambda c: c == 0),
        ("!=", lambda c: c != 0),
        ("<", lambda c: c < 0),
        (">", lambda c: c > 0),
    ]
    ok = True
    for part in predicate.split(","):
        p = part.strip()
        for sym, test in ops:
            if p.startswith(sym):
                v = _parse_version(p[len(sym) :].strip())
                if v is None:
                    return None
                ok = ok and test(_cmp(version, v))
                break
        else:
            return None
    return ok


# ---------------------------------------------------------------------------------------------
# state
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Aggregate:
    name: str
    metadata: dict[str, str]


@dataclasses.dataclass
class HostState:
    host: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    reserved_vcpus: int = 0
    reserved_memory_mb: int = 0
    reserved_disk_gb: int = 0
    cpu_allocation_ratio: float = 16.0
    ram_allocation_ratio: float = 1.5
    disk_allocation_ratio: float = 1.0
    availability_zone: str = "nova"
    enabled: bool = True
    up: bool = True
    num_io_ops: int = 0
    num_instances: int = 0
    failed_builds: int = 0
    hypervisor_type: str = ""
    hypervisor_version: int = 0
    cpu_arch: str = ""
    capabilities: dict[str, str] = dataclasses.field(default_factory=dict)  # Nova's compute "stats"
    aggregates: list[Aggregate] = dataclasses.field(default_factory=list)
    generation: int = 0
    # placement traits of the host's resource provider
    traits: frozenset[str] = frozenset()
    # libvirt's host CPU as Nova's ComputeNode.cpu_info carries it (JSON object text)
    cpu_info: str = ""
    # Nova's supported_instances: (arch, hypervisor type, vm mode) triples; empty: derived below
    reported_instances: tuple[tuple[str, str, str], ...] = ()
    # sums of claims (Placement allocations)
    vcpus_used: int = 0
    memory_mb_used: int = 0
    disk_gb_used: int = 0
    report_seq: int = 0

    # resources as Placement sees them
    @property
    def free_vcpus(self) -> float:
        return (self.vcpus - self.reserved_vcpus) * self.cpu_allocation_ratio - self.vcpus_used

    @property
    def free_ram_mb(self) -> float:
        return (self.memory_mb - self.reserved_memory_mb) * self.ram_allocation_ratio - self.memory_mb_used

    @property
    def free_disk_gb(self) -> float:
        return (self.disk_gb - self.reserved_disk_gb) * self.disk_allocation_ratio - self.disk_gb_used

    def supported_instances(self) -> list[tuple[str, str, str]]:
        """The reported list, canonicalised; an agent that reports none has its one arch and type."""
        if self.reported_instances:
            return [(canon_arch(a), canon_hv_type(h), canon_vm_mode(m)) for a, h, m in self.reported_instances]
        if not self.cpu_arch and not self.hypervisor_type:
            return []
        return [(canon_arch(self.cpu_arch), canon_hv_type(self.hypervisor_type), "hvm")]

    def cpu_info_dict(self) -> dict[str, Any]:
        try:
            value = json.loads(self.cpu_info) if self.cpu_info else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def attributes(self) -> dict[str, Any]:
        """The ``HostState`` attributes Nova's ComputeCapabilitiesFilter resolves a key against
        before it looks in the stats (``_get_capabilities``), with Nova's values."""
        return {
            "host": self.host,
            "nodename": self.host,
            "hypervisor_hostname": self.host,
            "hypervisor_type": self.hypervisor_type or None,
            "hypervisor_version": self.hypervisor_version or None,
            "cpu_info": self.cpu_info or None,
            "supported_instances": [list(t) for t in self.supported_instances()],
            "total_usable_ram_mb": self.memory_mb,
            "total_usable_disk_gb": self.disk_gb,
            "free_ram_mb": self.memory_mb - self.reserved_memory_mb - self.memory_mb_used,
            "free_disk_mb": (self.disk_gb - self.reserved_disk_gb - self.disk_gb_used) * 1024,
            "disk_mb_used": (self.disk_gb_used + self.reserved_disk_gb) * 1024,
            "vcpus_total": self.vcpus,
            "vcpus_used": self.vcpus_used,
            "num_instances": self.num_instances,
            "num_io_ops": self.num_io_ops,
            "failed_builds": self.failed_builds,
            "cpu_allocation_ratio": self.cpu_allocation_ratio,
            "ram_allocation_ratio": self.ram_allocation_ratio,
            "disk_allocation_ratio": self.disk_allocation_ratio,
        }

    def consume_from_request(self, spec: RequestSpec) -> None:
        """Nova's HostState.consume_from_request (what a claim/pick does to the host)."""
        self.vcpus_used += spec.vcpus
        self.memory_mb_used += spec.memory_mb
        self.disk_gb_used += spec.disk_gb
        self.num_instances += 1
        self.num_io_ops += 1


def aggregate_metadata_get_by_host(host_state: HostState, key: str | None = None) -> dict[str, set[str]]:
    """nova.scheduler.utils.aggregate_metadata_get_by_host."""
    metadata: dict[str, set[str]] = {}
    for aggr in host_state.aggregates:
        if key is None or key in aggr.metadata:
            for k, v in aggr.metadata.items():
                metadata.setdefault(k, set()).update(x.strip() for x in v.split(","))
    return metadata


MAX_AMOUNT = 2**40
MAX_INSTANCES = 2**10


@dataclasses.dataclass
class RequestSpec:
    instance_ids: list[str]
    vcpus: int
    memory_mb: int
    root_gb: int = 0
    ephemeral_gb: int = 0
    swap_mb: int = 0
    project_id: str = ""
    availability_zone: str = ""
    flavor_extra_specs: dict[str, str] = dataclasses.field(default_factory=dict)
    image_id: str = ""
    image_properties: dict[str, str] = dataclasses.field(default_factory=dict)
    group_policy: str = ""
    group_hosts: list[str] = dataclasses.field(default_factory=list)
    # the anti-affinity group's rule (Nova's instance_group.rules["max_server_per_host"])
    group_max_server_per_host: int = 1
    same_host: list[str] = dataclasses.field(default_factory=list)
    different_host: list[str] = dataclasses.field(default_factory=list)
    ignore_hosts: list[str] = dataclasses.field(default_factory=list)
    min_count: int = 0
    # filled in by the scheduler: instance uuid -> host name of existing claims
    instance_hosts: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        # the Rust core's bounds (model.rs MAX_AMOUNT / MAX_INSTANCES), so both reject alike
        for name in ("vcpus", "memory_mb", "root_gb", "ephemeral_gb", "swap_mb"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_AMOUNT:
                raise ValueError(f"{name} must be between 0 and {MAX_AMOUNT} (got {value})")
        if self.disk_gb > MAX_AMOUNT:
            raise ValueError(
                f"root_gb + ephemeral_gb + swap_mb / 1024 must be at most {MAX_AMOUNT} GB (got {self.disk_gb})"
            )
        if len(self.instance_ids) > MAX_INSTANCES:
            raise ValueError(f"at most {MAX_INSTANCES} instances per request (got {len(self.instance_ids)})")

    @property
    def disk_gb(self) -> int:
        return self.root_gb + self.ephemeral_gb + math.ceil(max(self.swap_mb, 0) / 1024)

    def image_prop(self, key: str, legacy: str) -> str | None:
        v = self.image_properties.get(key)
        return v if v is not None else self.image_properties.get(legacy)

    def traits(self) -> tuple[set[str], set[str]]:
        """Required and forbidden traits, as Nova's ResourceRequest reads them: flavor extra specs
        ``trait:X=required|forbidden``, image properties ``trait:X=required``."""
        return request_traits(self.flavor_extra_specs, self.image_properties)


def request_traits(extra_specs: Mapping[str, str], image_properties: Mapping[str, str]) -> tuple[set[str], set[str]]:
    required: set[str] = set()
    forbidden: set[str] = set()
    for key, value in extra_specs.items():
        if key.startswith("trait:") and len(key) > 6:
            if value == "required":
                required.add(key[6:])
            elif value == "forbidden":
                forbidden.add(key[6:])
    for key, value in image_properties.items():
        if key.startswith("trait:") and len(key) > 6 and value == "required":
            required.add(key[6:])
    return required, forbidden


@dataclasses.dataclass
class Config:
    enabled_filters: list[str] | None = None
    weighers: dict[str, float] | None = None
    host_subset_size: int = 1
    max_attempts: int = 3
    max_io_ops_per_host: int = 8
    max_instances_per_host: int = 50
    isolated_images: list[str] = dataclasses.field(default_factory=list)
    isolated_hosts: list[str] = dataclasses.field(default_factory=list)
    restrict_isolated_hosts_to_isolated_images: bool = True
    seed: int | None = None


# ---------------------------------------------------------------------------------------------
# filters
# ---------------------------------------------------------------------------------------------


class BaseHostFilter:
    name = "BaseHostFilter"

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg

    def host_passes(self, host_state: HostState, spec_obj: RequestSpec) -> bool:
        raise NotImplementedError


class RamFilter(BaseHostFilter):
    name = "RamFilter"

    def host_passes(self, host_state: HostState, spec_obj: RequestSpec) -> bool:
        return host_state.free_ram_mb >= spec_obj.memory_mb


class CoreFilter(BaseHostFilter):
    name = "CoreFilter"

    def host_passes(self, host_state: HostState, spec_obj: RequestSpec) -> bool:
        return host_state.free_vcpus >= spec_obj.vcpus


class DiskFilter(BaseHostFilter):
    name = "DiskFilter"

    def host_passes(self, host_state: HostState, spec_obj: RequestSpec) -> bool:
        return host_state.free_disk_gb >= spec_obj.disk_gb


class TraitsFilter(BaseHostFilter):
    """Placement's required/forbidden traits (Nova asks Placement; drover has the traits here)."""

    name = "TraitsFilter"

    def host_passes(self, host_state: HostState, spec_obj: RequestSpec) -> bool:
        required, forbidden = spec_obj.traits()
        return required <= host_state.traits and not (forbidden & host_state.traits)


class ComputeFilter(BaseHostFilter):
    """Active compute node: service enabled and up."""

    name = "ComputeFilter"

    def host_passes(self, host_state: HostState, spec_obj: RequestSpec) -> bool:
        return host_state.enabled and host_state.up


class AvailabilityZoneFilter(BaseHostFilter):
    name = "AvailabilityZoneFilter"

    def host_passes(self, host_state: HostState, spec_obj: RequestSpec) -> bool:
        availability_zone = spec_obj.availability_zone
        if not availability_zone:
            return True
        metadata = aggregate_metadata_get_by_host(host_state, key="availability_zone")
        if "availability_zone" in metadata:
            return availability_zone in metadata["availability_zone"]
        return availability_zone == host_state.availability_zone


def _python_str(value: Any) -> str:
    """``str()`` of a value Nova holds (JSON-decoded): what extra_specs_ops.match compares."""
    return str(value)


class ComputeCapabilitiesFilter(BaseHostFilter):
    """Nova's ``_satisfies_extra_specs``: a key is resolved against the host's own attributes
    (``hypervisor_version``, ``cpu_info`` parsed from JSON at each nested step, ...) and then its
    stats; ``hw:maxphysaddr_bits`` becomes ``capabilities:cpu_info:maxphysaddr:bits >= N``."""

    name = "ComputeCapabilitiesFilter"

    @staticmethod
    def _get_capabilities(host_state: HostState, scope: list[str]) -> Any:
        attrs = host_state.attributes()
        cap: Any = None
        for index, key in enumerate(scope):
            if index == 0:
                cap = attrs.get(key)
                if cap is None:
                    cap = host_state.capabilities.get(key)
            else:
                if isinstance(cap, str):
                    try:
                        cap = json.loads(cap)
                    except ValueError:
                        return None
                cap = cap.get(key) if isinstance(cap, dict) else None
            if cap is None:
                return None
        return cap

    def host_passes(self, host_state: HostState, spec_obj: RequestSpec) -> bool:
        especs = dict(spec_obj.flavor_extra_specs)
        bits = especs.pop("hw:maxphysaddr_bits", None)
        if bits is not None:
            especs["capabilities:cpu_info:maxphysaddr:bits"] = ">= " + bits
        for key, req in especs.items():
            scope = key.split(":")
            if len(scope) == 1:
                # An unscoped key binds only hosts that have it (Nova's has_attr check).
                if key not in host_state.attributes() and key not in host_state.capabilities:
                    continue
            else:
                if scope[0] != "capabilities":
                    continue
                del scope[0]
            cap = self._get_capabilities(host_state, scope)
            if cap is None:
                return False
            if not match(_python_str(cap), req):
                return False
        return True


class ImagePropertiesFilter(BaseHostFilter):
    name = "ImagePropertiesFilter"

    def host_passes(self, host_state: HostState, spec_obj: RequestSpec) -> bool:
        img_arch = spec_obj.image_prop("hw_architecture", "architecture")
        img_h_type = spec_obj.image_prop("img_hv_type", "hypervisor_type")
        img_vm_mode = spec_obj.image_prop("hw_vm_mode", "vm_mode")
        checked_img_props = (
            canon_arch(img_arch) if img_arch is not None else None,
            canon_hv_type(img_h_type) if img_h_type is not None else None,
            canon_vm_mode(img_vm_mode) if img_vm_mode is not None else None,
        )
        if not any(checked_img_props):
            return True
        supp_instances = host_state.supported_instances()
        if not supp_instances:
            return False

        def _compare_props(props: Iterable[str | None], other_props: tuple[str, ...]) -> bool:
            return all(not i or i in other_props for i in props)

        def _compare_product_version(hyper_version: int) -> bool:
            version_required = spec_obj.image_prop("img_hv_requested_version", "hypervisor_version_requires")
            if not (hyper_version and version_required):
                return True
            return bool(version_satisfies(version_required, version_parts(hyper_version)))

        def _compare_maxphysaddr_bits() -> bool:
            bits_required = _int_or_none(spec_obj.image_properties.get("hw_maxphysaddr_bits"))
            if not bits_required:
                return True
            maxphysaddr = host_state.cpu_info_dict().get("maxphysaddr")
            bits = maxphysaddr.get("bits") if isinstance(maxphysaddr, dict) else None
            if not bits or not isinstance(bits, int):
                return True
            return bits >= bits_required

        for supp_inst in supp_instances:
            if (
                _compare_props(checked_img_props, supp_inst)
                and _compare_product_version(host_state.hypervisor_version)
                and _compare_maxphysaddr_bits()
            ):
                return True
        return False


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class _GroupAntiAffinityFilter(BaseHostFilter):
    policy_name = ""

    def host_passes(self, host_state: HostState, spec_obj: RequestSpec) -> bool:
        if spec_obj.group_policy != self.policy_name:
            return True
        # members already on this host (one group_hosts entry per member) under the group's limit
        return spec_obj.group_hosts.count(host_state.host) < max(spec_obj.group_max_server_per_host, 1)


class ServerGroupAntiAffinityFilter(_GroupAntiAffinityFilter):
    name = "ServerGroupAntiAffinityFilter"
    policy_name = "anti-affinity"


class _GroupAffinityFilter(BaseHostFilter):
    policy_name = ""

    def host_passes(self, host_state: HostState, spec_obj: RequestSpec) -> bool:
        if spec_obj.group_policy != self.policy_name:
            return True
        group_hosts = spec_obj.group_hosts
        if not group_hosts:
            return True
        return host_state.host in group_hosts


class ServerGroupAffinityFilter(_GroupAffinityFilter):
    name = "ServerGroupAffinityFilter"
    policy_name = "affinity"


class SameHostFilter(BaseHostFilter):
    """Schedule on the same host as any of the ``same_host`` instances."""

    name = "SameHostFilter"

    def host_passes(self, host_state: HostState, spec_obj: RequestSpec) -> bool:
        affinity_uuids = spec_obj.same_host
        if affinity_uuids:
            return any(spec_obj.instance_hosts.get(u) == host_state.host for u in affinity_uuids)
        return True


class DifferentHostFilter(BaseHostFilter):
    """Schedule on a host other than those of the ``different_host`` instances."""

    name = "DifferentHostFilter"

    def host_passes(self, host_state: HostState, spec_obj: RequestSpec) -> bool:
        affinity_uuids = spec_obj.different_host
        if affinity_uuids:
            return not any(spec_obj.instance_hosts.get(u) == host_state.host for u in affinity_uuids)
        return True


class IoOpsFilter(BaseHostFilter):
    name = "IoOpsFilter"

    def host_passes(self, host_state: HostState, spec_obj: RequestSpec) -> bool:
        return host_state.num_io_ops < self.cfg.max_io_ops_per_host


class NumInstancesFilter(BaseHostFilter):
    name = "NumInstancesFilter"

    def host_passes(self, host_state: HostState, spec_obj: RequestSpec) -> bool:
        return host_state.num_instances < self.cfg.max_instances_per_host


class AggregateInstanceExtraSpecsFilter(BaseHostFilter):
    name = "AggregateInstanceExtraSpecsFilter"
    _SCOPE = "aggregate_instance_extra_specs"

    def host_passes(self, host_state: HostState, spec_obj: RequestSpec) -> bool:
        if not spec_obj.flavor_extra_specs:
            return True
        metadata = aggregate_metadata_get_by_host(host_state)
        for key, req in spec_obj.flavor_extra_specs.items():
            scope = key.split(":", 1)
            if len(scope) > 1:
                if scope[0] != self._SCOPE:
                    continue
                del scope[0]
            aggregate_vals = metadata.get(scope[0], None)
            if not aggregate_vals:
                return False
            for aggregate_val in aggregate_vals:
                if match(aggregate_val, req):
                    break
            else:
                return False
        return True


class AggregateMultiTenancyIsolation(BaseHostFilter):
    name = "AggregateMultiTenancyIsolation"

    def host_passes(self, host_state: HostState, spec_obj: RequestSpec) -> bool:
        metadata = aggregate_metadata_get_by_host(host_state)
        if metadata != {}:
            configured_tenant_ids: set[str] = set()
            for name, values in metadata.items():
                if name.startswith("filter_tenant_id"):
                    configured_tenant_ids.update(values)
            if configured_tenant_ids and spec_obj.project_id not in configured_tenant_ids:
                return False
        return True


class IsolatedHostsFilter(BaseHostFilter):
    name = "IsolatedHostsFilter"

    def host_passes(self, host_state: HostState, spec_obj: RequestSpec) -> bool:
        isolated_hosts = self.cfg.isolated_hosts
        isolated_images = self.cfg.isolated_images
        restrict = self.cfg.restrict_isolated_hosts_to_isolated_images
        if not isolated_images:
            return (not restrict) or (host_state.host not in isolated_hosts)
        image_ref = spec_obj.image_id or None
        image_isolated = image_ref in isolated_images
        host_isolated = host_state.host in isolated_hosts
        if restrict:
            return image_isolated == host_isolated
        return (not image_isolated) or host_isolated


FILTERS: dict[str, type[BaseHostFilter]] = {
    f.name: f
    for f in (
        RamFilter,
        CoreFilter,
        DiskFilter,
        TraitsFilter,
        ComputeFilter,
        AvailabilityZoneFilter,
        ComputeCapabilitiesFilter,
        ImagePropertiesFilter,
        ServerGroupAffinityFilter,
        ServerGroupAntiAffinityFilter,
        SameHostFilter,
        DifferentHostFilter,
        IoOpsFilter,
        NumInstancesFilter,
        AggregateInstanceExtraSpecsFilter,
        AggregateMultiTenancyIsolation,
        IsolatedHostsFilter,
    )
}

DEFAULT_FILTERS = [
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

# ---------------------------------------------------------------------------------------------
# weighers
# ---------------------------------------------------------------------------------------------


def normalize(weight_list: Sequence[float], minval: float | None = None) -> list[float]:
    """nova.weights.normalize: (w - min) / (max - min), ``minval`` fixed by the weigher if it
    has one; all 0 when max == min."""
    if not weight_list:
        return []
    maxval = float(max(weight_list))
    minval = float(min(weight_list)) if minval is None else float(minval)
    if minval == maxval:
        return [0] * len(weight_list)
    range_ = maxval - minval
    return [(i - minval) / range_ for i in weight_list]


def weight_multiplier(host_state: HostState, key: str, default: float) -> float:
    """nova.scheduler.utils.get_weight_multiplier: the least of the host's aggregates' values for
    ``key``, or the configured multiplier if none has it or one is not a number."""
    values = {a.metadata[key] for a in host_state.aggregates if key in a.metadata}
    if not values:
        return default
    try:
        return min(float(v) for v in values)
    except ValueError:
        return default


class BaseHostWeigher:
    name = "BaseHostWeigher"
    default_multiplier = 1.0
    # Nova's BaseWeigher.minval: raw weights are clamped at it and normalised as (w - minval) /
    # (max - minval); None means min-max over the candidates
    minval: float | None = None
    # the aggregate metadata key that overrides the multiplier per host
    aggregate_key = ""

    def _weigh_object(self, host_state: HostState, spec_obj: RequestSpec) -> float:
        raise NotImplementedError

    def weigh_objects(self, hosts: Sequence[HostState], spec_obj: RequestSpec) -> list[float]:
        weights = [self._weigh_object(h, spec_obj) for h in hosts]
        if self.minval is not None:
            weights = [max(w, self.minval) for w in weights]
        return weights

    def weight_multiplier(self, host_state: HostState, configured: float) -> float:
        return weight_multiplier(host_state, self.aggregate_key, configured)


class RAMWeigher(BaseHostWeigher):
    name = "RAMWeigher"
    minval = 0.0
    aggregate_key = "ram_weight_multiplier"

    def _weigh_object(self, host_state: HostState, spec_obj: RequestSpec) -> float:
        # Nova's free_ram_mb: total - reserved - used (no allocation ratio); negative when overcommitted
        return host_state.memory_mb - host_state.reserved_memory_mb - host_state.memory_mb_used


class CPUWeigher(BaseHostWeigher):
    name = "CPUWeigher"
    minval = 0.0
    aggregate_key = "cpu_weight_multiplier"

    def _weigh_object(self, host_state: HostState, spec_obj: RequestSpec) -> float:
        return host_state.vcpus * host_state.cpu_allocation_ratio - host_state.vcpus_used


class DiskWeigher(BaseHostWeigher):
    name = "DiskWeigher"
    minval = 0.0
    aggregate_key = "disk_weight_multiplier"

    def _weigh_object(self, host_state: HostState, spec_obj: RequestSpec) -> float:
        # free_disk_mb
        return (host_state.disk_gb - host_state.reserved_disk_gb - host_state.disk_gb_used) * 1024


class IoOpsWeigher(BaseHostWeigher):
    name = "IoOpsWeigher"
    default_multiplier = -1.0
    minval = 0.0
    aggregate_key = "io_ops_weight_multiplier"

    def _weigh_object(self, host_state: HostState, spec_obj: RequestSpec) -> float:
        return host_state.num_io_ops


class NumInstancesWeigher(BaseHostWeigher):
    name = "NumInstancesWeigher"
    default_multiplier = 0.0
    aggregate_key = "num_instances_weight_multiplier"

    def _weigh_object(self, host_state: HostState, spec_obj: RequestSpec) -> float:
        return host_state.num_instances


class _SoftAffinityWeigherBase(BaseHostWeigher):
    policy_name = ""

    def _weigh_object(self, host_state: HostState, spec_obj: RequestSpec) -> float:
        if spec_obj.group_policy != self.policy_name:
            return 0
        return spec_obj.group_hosts.count(host_state.host)


class ServerGroupSoftAffinityWeigher(_SoftAffinityWeigherBase):
    name = "ServerGroupSoftAffinityWeigher"
    policy_name = "soft-affinity"
    aggregate_key = "soft_affinity_weight_multiplier"


class ServerGroupSoftAntiAffinityWeigher(_SoftAffinityWeigherBase):
    name = "ServerGroupSoftAntiAffinityWeigher"
    policy_name = "soft-anti-affinity"
    aggregate_key = "soft_anti_affinity_weight_multiplier"

    def _weigh_object(self, host_state: HostState, spec_obj: RequestSpec) -> float:
        weight = super()._weigh_object(host_state, spec_obj)
        return weight * -1


class BuildFailureWeigher(BaseHostWeigher):
    """More failed builds weigh less: the raw weight is the count, the multiplier negated."""

    name = "BuildFailureWeigher"
    default_multiplier = 1000000.0
    aggregate_key = "build_failure_weight_multiplier"

    def _weigh_object(self, host_state: HostState, spec_obj: RequestSpec) -> float:
        return host_state.failed_builds

    def weight_multiplier(self, host_state: HostState, configured: float) -> float:
        return -1 * super().weight_multiplier(host_state, configured)


class HypervisorVersionWeigher(BaseHostWeigher):
    name = "HypervisorVersionWeigher"
    aggregate_key = "hypervisor_version_weight_multiplier"

    def _weigh_object(self, host_state: HostState, spec_obj: RequestSpec) -> float:
        return host_state.hypervisor_version


WEIGHERS: dict[str, type[BaseHostWeigher]] = {
    w.name: w
    for w in (
        RAMWeigher,
        CPUWeigher,
        DiskWeigher,
        IoOpsWeigher,
        NumInstancesWeigher,
        ServerGroupSoftAffinityWeigher,
        ServerGroupSoftAntiAffinityWeigher,
        BuildFailureWeigher,
        HypervisorVersionWeigher,
    )
}

DEFAULT_WEIGHERS = {name: cls.default_multiplier for name, cls in WEIGHERS.items()}

# ---------------------------------------------------------------------------------------------
# scheduler
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class WeighedHost:
    obj: HostState
    weight: float = 0.0


@dataclasses.dataclass
class Selection:
    instance_id: str
    host: str
    alternate_hosts: list[str]


@dataclasses.dataclass
class Result:
    selections: list[Selection]
    hosts_total: int
    hosts_passed: int
    rejections: dict[str, int]
    weighed: list[tuple[str, float]]  # first iteration, sorted best first
    summary: str
    ok: bool


class NoValidHost(Exception):
    def __init__(self, result: Result) -> None:
        super().__init__(result.summary)
        self.result = result


class ReferenceScheduler:
    """Host table + FilterScheduler, the same API shape as ``scheduler_core.HostTable``."""

    def __init__(self, cfg: Config | None = None) -> None:
        self.cfg = cfg or Config()
        names = self.cfg.enabled_filters if self.cfg.enabled_filters is not None else DEFAULT_FILTERS
        self.filters: list[BaseHostFilter] = []
        for n in names:
            if n not in FILTERS:
                raise ValueError(f"unknown filter {n!r}")
            if all(f.name != n for f in self.filters):
                self.filters.append(FILTERS[n](self.cfg))
        ws = self.cfg.weighers if self.cfg.weighers is not None else DEFAULT_WEIGHERS
        self.weighers: list[tuple[BaseHostWeigher, float]] = []
        for n, m in ws.items():
            if n not in WEIGHERS:
                raise ValueError(f"unknown weigher {n!r}")
            self.weighers.append((WEIGHERS[n](), float(m)))
        self.order: list[str] = []  # table order (swap-remove like the Rust table)
        self.host_states: dict[str, HostState] = {}
        self.claims: dict[str, tuple[str, int, int, int, int]] = {}  # id -> host, vcpus, ram, disk, seq
        self.random = random.Random(self.cfg.seed)
        self._seq = 0

    # ---- table -------------------------------------------------------------------------------

    def upsert_host(
        self,
        host: str,
        *,
        vcpus: int,
        memory_mb: int,
        disk_gb: int,
        io_ops: int = 0,
        capabilities: Mapping[str, str] | None = None,
        aggregates: Sequence[tuple[str, Mapping[str, str] | None]] | None = None,
        generation: int = 0,
        availability_zone: str | None = None,
        hypervisor_type: str | None = None,
        cpu_arch: str | None = None,
        traits: Iterable[str] | None = None,
        supported_instances: Iterable[Sequence[str]] | None = None,
        **kw: Any,
    ) -> bool:
        old = self.host_states.get(host)
        if old is not None and generation < old.generation:
            return False
        self._seq += 1
        hs = HostState(
            host=host,
            vcpus=vcpus,
            memory_mb=memory_mb,
            disk_gb=disk_gb,
            num_io_ops=io_ops,
            capabilities={k: str(v) for k, v in (capabilities or {}).items()},
            aggregates=[Aggregate(n, {k: str(v) for k, v in (md or {}).items()}) for n, md in (aggregates or [])],
            generation=generation,
            availability_zone="nova" if availability_zone is None else availability_zone,
            hypervisor_type=hypervisor_type or "",
            cpu_arch=cpu_arch or "",
            traits=frozenset(traits or ()),
            reported_instances=tuple((a, h, m) for a, h, m in (supported_instances or ())),
            report_seq=self._seq,
            **kw,
        )
        if old is not None:
            hs.vcpus_used, hs.memory_mb_used, hs.disk_gb_used = old.vcpus_used, old.memory_mb_used, old.disk_gb_used
        else:
            self.order.append(host)
        self.host_states[host] = hs
        return True

    def remove_host(self, host: str) -> bool:
        if host not in self.host_states:
            return False
        i = self.order.index(host)
        self.order[i] = self.order[-1]
        self.order.pop()
        del self.host_states[host]
        self.claims = {k: c for k, c in self.claims.items() if c[0] != host}
        return True

    def set_up(self, host: str, up: bool) -> None:
        self.host_states[host].up = up

    def set_enabled(self, host: str, enabled: bool) -> None:
        self.host_states[host].enabled = enabled

    def __len__(self) -> int:
        return len(self.order)

    def claim(self, instance_id: str, host: str, *, vcpus: int, memory_mb: int, disk_gb: int) -> None:
        if host not in self.host_states:
            raise KeyError(host)
        self.release(instance_id)
        hs = self.host_states[host]
        hs.vcpus_used += vcpus
        hs.memory_mb_used += memory_mb
        hs.disk_gb_used += disk_gb
        hs.num_instances += 1
        hs.num_io_ops += 1
        self.claims[instance_id] = (host, vcpus, memory_mb, disk_gb, hs.report_seq)

    def release(self, instance_id: str) -> bool:
        c = self.claims.pop(instance_id, None)
        if c is None:
            return False
        host, vcpus, ram, disk, seq = c
        hs = self.host_states.get(host)
        if hs is not None:
            hs.vcpus_used -= vcpus
            hs.memory_mb_used -= ram
            hs.disk_gb_used -= disk
            if hs.report_seq == seq:
                hs.num_instances = max(hs.num_instances - 1, 0)
                hs.num_io_ops = max(hs.num_io_ops - 1, 0)
        return True

    # ---- filter / weigh ----------------------------------------------------------------------

    def _prepare(self, spec: RequestSpec) -> RequestSpec:
        spec = dataclasses.replace(
            spec, group_hosts=list(spec.group_hosts), flavor_extra_specs=dict(spec.flavor_extra_specs)
        )
        spec.instance_hosts = {i: c[0] for i, c in self.claims.items()}
        return spec

    def passing(self, filter_name: str, spec: RequestSpec) -> list[str]:
        """Hosts (table order) that pass one filter on its own."""
        f = FILTERS[filter_name](self.cfg)
        spec = self._prepare(spec)
        return [h for h in self.order if f.host_passes(self.host_states[h], spec)]

    def weigh(self, hosts: list[HostState], spec: RequestSpec) -> list[WeighedHost]:
        """nova.weights.BaseWeightHandler.get_weighed_objects, sorted best first (stable).
        One host (or none) is not weighed: its weight stays 0."""
        weighed = [WeighedHost(h) for h in hosts]
        if len(weighed) <= 1:
            return weighed
        for weigher, multiplier in self.weighers:
            weights = normalize(weigher.weigh_objects(hosts, spec), minval=weigher.minval)
            for i, weight in enumerate(weights):
                weighed[i].weight += weigher.weight_multiplier(weighed[i].obj, multiplier) * weight
        return sorted(weighed, key=lambda x: x.weight, reverse=True)

    def _schedule(self, spec: RequestSpec, claim: bool) -> Result:
        t0 = time.perf_counter()
        spec = self._prepare(spec)
        n_inst = max(len(spec.instance_ids), 1)
        required = min(spec.min_count, n_inst) if spec.min_count > 0 else n_inst
        # simulate consumption on copies
        states = {h: dataclasses.replace(s) for h, s in self.host_states.items()}
        ignore = set(spec.ignore_hosts)
        rejections = {f.name: 0 for f in self.filters}
        n_ignored = sum(1 for h in self.order if h in ignore)
        hosts = [states[h] for h in self.order if h not in ignore]
        picks: list[str] = []
        first_weighed: list[tuple[str, float]] = []
        weighed: list[WeighedHost] = []
        for _num in range(n_inst):
            passed = []
            for hs in hosts:
                for f in self.filters:
                    if not f.host_passes(hs, spec):
                        rejections[f.name] += 1
                        break
                else:
                    passed.append(hs)
            hosts = passed
            if not hosts:
                break
            weighed = self.weigh(hosts, spec)
            if not first_weighed:
                first_weighed = [(w.obj.host, w.weight) for w in weighed]
            chosen = self.choose(weighed[: self.cfg.host_subset_size])
            picks.append(chosen.obj.host)
            # _consume_selected_host
            chosen.obj.consume_from_request(spec)
            if spec.group_policy:
                spec.group_hosts.append(chosen.obj.host)
        ok = len(picks) >= required
        selections: list[Selection] = []
        if ok:
            alts = [w.obj.host for w in weighed if w.obj.host not in picks][: self.cfg.max_attempts - 1]
            selections = [Selection(i, h, list(alts)) for i, h in zip(spec.instance_ids, picks, strict=False)]
            if claim:
                for i, h in zip(spec.instance_ids, picks, strict=False):
                    self.claim(i, h, vcpus=spec.vcpus, memory_mb=spec.memory_mb, disk_gb=spec.disk_gb)
        all_rej = ({"ignore_hosts": n_ignored} if n_ignored else {}) | rejections
        parts = ", ".join(f"{k} rejected {v}" for k, v in all_rej.items() if v)
        if ok:
            best = f"; best {first_weighed[0][0]} (weight {first_weighed[0][1]:.4f})" if first_weighed else ""
            summary = (f"placed {len(picks)} of {n_inst} instance{'' if n_inst == 1 else 's'}: "
                       f"{len(self.order)} hosts, {len(hosts)} passed" + (f"; {parts}" if parts else "") + best)
        else:
            summary = f"no valid host: {len(self.order)} hosts" + (f"; {parts}" if parts else "")
            if n_inst > 1:
                summary += f"; only {len(picks)} of {n_inst} instances could be placed (need {required})"
        del t0
        return Result(selections, len(self.order), len(hosts), all_rej, first_weighed, summary, ok)

    def choose(self, subset: list[WeighedHost]) -> WeighedHost:
        """Nova's random pick among the best ``host_subset_size`` (differential tests replace it
        with one that follows the Rust core's pick, as the two random streams differ)."""
        return subset[0] if len(subset) == 1 else self.random.choice(subset)

    def select(self, spec: RequestSpec) -> Result:
        res = self._schedule(spec, claim=True)
        if not res.ok:
            raise NoValidHost(res)
        return res

    def explain(self, spec: RequestSpec) -> Result:
        return self._schedule(spec, claim=False)
