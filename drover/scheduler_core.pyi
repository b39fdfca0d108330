"""Type stubs for drover.scheduler_core (Rust, PyO3): a Nova FilterScheduler core.

Filters (Nova names; RamFilter, CoreFilter, DiskFilter and TraitsFilter are Placement's checks):
RamFilter, CoreFilter, DiskFilter, TraitsFilter, ComputeFilter, AvailabilityZoneFilter,
ComputeCapabilitiesFilter, ImagePropertiesFilter, ServerGroupAffinityFilter,
ServerGroupAntiAffinityFilter, SameHostFilter, DifferentHostFilter, IoOpsFilter, NumInstancesFilter,
AggregateInstanceExtraSpecsFilter, AggregateMultiTenancyIsolation, IsolatedHostsFilter.

Weighers (default multipliers): RAMWeigher 1.0, CPUWeigher 1.0, DiskWeigher 1.0, IoOpsWeigher -1.0,
NumInstancesWeigher 0.0, ServerGroupSoftAffinityWeigher 1.0, ServerGroupSoftAntiAffinityWeigher 1.0,
BuildFailureWeigher 1000000.0 (applied negated, as Nova does), HypervisorVersionWeigher 1.0.
Nova 34 semantics: docs/nova-semantics.md.
"""

from collections.abc import Mapping, Sequence
from typing import final

__all__ = [
    "DEFAULT_FILTERS",
    "Explanation",
    "FilterRejection",
    "HostInfo",
    "HostTable",
    "NoValidHost",
    "RequestSpec",
    "SchedulerConfig",
    "Selection",
    "SelectionResult",
    "UnknownHostError",
    "WeighedHost",
    "__version__",
]
__version__: str
DEFAULT_FILTERS: list[str]

@final
class SchedulerConfig:
    def __new__(
        cls,
        enabled_filters: Sequence[str] | None = None,
        weighers: Mapping[str, float] | None = None,
        host_subset_size: int = 1,
        max_attempts: int = 3,
        max_io_ops_per_host: int = 8,
        max_instances_per_host: int = 50,
        isolated_images: Sequence[str] | None = None,
        isolated_hosts: Sequence[str] | None = None,
        restrict_isolated_hosts_to_isolated_images: bool = True,
        seed: int | None = None,
    ) -> SchedulerConfig: ...
    @property
    def enabled_filters(self) -> list[str]: ...
    @property
    def weighers(self) -> dict[str, float]: ...
    @property
    def host_subset_size(self) -> int: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def max_io_ops_per_host(self) -> int: ...
    @property
    def max_instances_per_host(self) -> int: ...
    @property
    def isolated_images(self) -> list[str]: ...
    @property
    def isolated_hosts(self) -> list[str]: ...
    @property
    def restrict_isolated_hosts_to_isolated_images(self) -> bool: ...
    @property
    def seed(self) -> int | None: ...
    @staticmethod
    def all_filters() -> list[str]: ...
    @staticmethod
    def all_weighers() -> list[tuple[str, float]]: ...

@final
class RequestSpec:
    def __new__(
        cls,
        instance_ids: Sequence[str],
        vcpus: int,
        memory_mb: int,
        root_gb: int = 0,
        ephemeral_gb: int = 0,
        swap_mb: int = 0,
        project_id: str | None = None,
        availability_zone: str | None = None,
        flavor_extra_specs: Mapping[str, str] | None = None,
        image_id: str | None = None,
        image_properties: Mapping[str, str] | None = None,
        group_policy: str | None = None,
        group_hosts: Sequence[str] | None = None,
        same_host: Sequence[str] | None = None,
        different_host: Sequence[str] | None = None,
        ignore_hosts: Sequence[str] | None = None,
        min_count: int = 0,
        group_max_server_per_host: int = 1,
    ) -> RequestSpec:
        """ValueError for an amount outside 0..2**40 (root + ephemeral + swap included) or more
        than 1024 instance ids: what the core's arithmetic is proven safe for."""
    @property
    def instance_ids(self) -> list[str]: ...
    @property
    def vcpus(self) -> int: ...
    @property
    def memory_mb(self) -> int: ...
    @property
    def root_gb(self) -> int: ...
    @property
    def ephemeral_gb(self) -> int: ...
    @property
    def swap_mb(self) -> int: ...
    @property
    def disk_gb(self) -> int:
        """root_gb + ephemeral_gb + ceil(swap_mb / 1024): the DISK_GB claimed per instance."""
    @property
    def project_id(self) -> str: ...
    @property
    def availability_zone(self) -> str: ...
    @property
    def flavor_extra_specs(self) -> dict[str, str]: ...
    @property
    def image_id(self) -> str: ...
    @property
    def image_properties(self) -> dict[str, str]: ...
    @property
    def group_policy(self) -> str: ...
    @property
    def group_hosts(self) -> list[str]: ...
    @property
    def same_host(self) -> list[str]: ...
    @property
    def different_host(self) -> list[str]: ...
    @property
    def ignore_hosts(self) -> list[str]: ...
    @property
    def min_count(self) -> int: ...
    @property
    def group_max_server_per_host(self) -> int:
        """The anti-affinity group's rule: members allowed per host (0 or 1: one)."""

@final
class Selection:
    @property
    def instance_id(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def alternate_hosts(self) -> list[str]: ...

@final
class FilterRejection:
    @property
    def filter(self) -> str: ...
    @property
    def rejected(self) -> int: ...
    @property
    def sample_reasons(self) -> list[str]: ...

@final
class WeighedHost:
    @property
    def host(self) -> str: ...
    @property
    def weight(self) -> float: ...
    @property
    def weights(self) -> dict[str, float]:
        """Each weigher"s contribution: multiplier * normalised value."""

@final
class Explanation:
    @property
    def hosts_total(self) -> int: ...
    @property
    def hosts_passed(self) -> int: ...
    @property
    def rejections(self) -> list[FilterRejection]: ...
    @property
    def top_hosts(self) -> list[WeighedHost]: ...
    @property
    def summary(self) -> str: ...
    @property
    def elapsed_us(self) -> float: ...

@final
class SelectionResult:
    @property
    def selections(self) -> list[Selection]: ...
    @property
    def explanation(self) -> Explanation: ...

@final
class NoValidHost(Exception):
    def __new__(cls, explanation: Explanation) -> NoValidHost: ...
    @property
    def explanation(self) -> Explanation: ...

class UnknownHostError(KeyError, ValueError):
    """Unknown host name (both a KeyError and a ValueError)."""

@final
class HostInfo:
    @property
    def host(self) -> str: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def up(self) -> bool: ...
    @property
    def availability_zone(self) -> str: ...
    @property
    def vcpus(self) -> int: ...
    @property
    def vcpus_used(self) -> int: ...
    @property
    def memory_mb(self) -> int: ...
    @property
    def memory_mb_used(self) -> int: ...
    @property
    def disk_gb(self) -> int: ...
    @property
    def disk_gb_used(self) -> int: ...
    @property
    def reserved_vcpus(self) -> int: ...
    @property
    def reserved_memory_mb(self) -> int: ...
    @property
    def reserved_disk_gb(self) -> int: ...
    @property
    def free_vcpus(self) -> float: ...
    @property
    def free_memory_mb(self) -> float: ...
    @property
    def free_disk_gb(self) -> float: ...
    @property
    def num_instances(self) -> int: ...
    @property
    def io_ops(self) -> int: ...
    @property
    def failed_builds(self) -> int: ...
    @property
    def cpu_allocation_ratio(self) -> float: ...
    @property
    def ram_allocation_ratio(self) -> float: ...
    @property
    def disk_allocation_ratio(self) -> float: ...
    @property
    def hypervisor_type(self) -> str: ...
    @property
    def hypervisor_version(self) -> int: ...
    @property
    def cpu_arch(self) -> str: ...
    @property
    def aggregates(self) -> list[str]: ...
    @property
    def generation(self) -> int: ...
    @property
    def traits(self) -> list[str]: ...
    @property
    def cpu_info(self) -> str: ...
    @property
    def supported_instances(self) -> list[tuple[str, str, str]]: ...

@final
class HostTable:
    def __new__(cls, cfg: SchedulerConfig | None = None) -> HostTable: ...
    @property
    def config(self) -> SchedulerConfig: ...
    def upsert_host(
        self,
        host: str,
        *,
        vcpus: int,
        memory_mb: int,
        disk_gb: int,
        reserved_vcpus: int = 0,
        reserved_memory_mb: int = 0,
        reserved_disk_gb: int = 0,
        cpu_allocation_ratio: float = 16.0,
        ram_allocation_ratio: float = 1.5,
        disk_allocation_ratio: float = 1.0,
        availability_zone: str | None = None,
        enabled: bool = True,
        up: bool = True,
        io_ops: int = 0,
        num_instances: int = 0,
        failed_builds: int = 0,
        hypervisor_type: str | None = None,
        hypervisor_version: int = 0,
        cpu_arch: str | None = None,
        capabilities: Mapping[str, str] | None = None,
        aggregates: Sequence[tuple[str, Mapping[str, str] | None]] | None = None,
        generation: int = 0,
        traits: Sequence[str] | None = None,
        cpu_info: str | None = None,
        supported_instances: Sequence[tuple[str, str, str]] | None = None,
    ) -> bool:
        """Insert/update a host; False (no change) if generation < the stored one. Claims are kept.
        availability_zone None means "nova". ValueError (no change) for an amount outside
        0..2**40 or a ratio that is negative or not finite."""
    def remove_host(self, host: str) -> bool: ...
    def set_up(self, host: str, up: bool) -> None: ...
    def set_enabled(self, host: str, enabled: bool) -> None: ...
    def __len__(self) -> int: ...
    def __contains__(self, key: str, /) -> bool: ...
    def select(self, spec: RequestSpec) -> SelectionResult:
        """Claim a host for every instance (all or none); raises NoValidHost, or ValueError (no
        claim) if a host's summed usage would pass 2**50."""
    def explain(self, spec: RequestSpec) -> SelectionResult:
        """The same computation as select; claims nothing, never raises NoValidHost."""
    def claim(self, instance_id: str, host: str, *, vcpus: int, memory_mb: int, disk_gb: int) -> None:
        """Restore an allocation (may overcommit); UnknownHostError, or ValueError for amounts
        outside 0..2**40 or a usage that would pass 2**50."""
    def release(self, instance_id: str) -> bool: ...
    def claim_host(self, instance_id: str) -> str | None: ...
    def num_claims(self) -> int: ...
    def hosts(self, names: Sequence[str] | None = None, limit: int = 0) -> list[HostInfo]: ...
    def memory_bytes(self) -> int: ...
    def debug_filter_hosts(self, filter: str, spec: RequestSpec) -> list[str]: ...
    def debug_weigh(self, names: Sequence[str], spec: RequestSpec) -> list[tuple[str, float]]: ...
