"""drover.v1 scheduler messages ⇄ scheduler_core objects."""

from __future__ import annotations

from typing import Any

from drover import scheduler_core as sc
from drover.v1 import scheduler_pb2, types_pb2


def core_config(cfg: Any) -> Any:
    return sc.SchedulerConfig(
        enabled_filters=cfg.enabled_filters,
        weighers=cfg.weighers,
        host_subset_size=cfg.host_subset_size,
        max_attempts=cfg.max_attempts,
        max_io_ops_per_host=cfg.max_io_ops_per_host,
        max_instances_per_host=cfg.max_instances_per_host,
        isolated_images=list(cfg.isolated_images),
        isolated_hosts=list(cfg.isolated_hosts),
        restrict_isolated_hosts_to_isolated_images=cfg.restrict_isolated_hosts_to_isolated_images,
    )


def request_spec(spec: scheduler_pb2.RequestSpec) -> Any:
    return sc.RequestSpec(
        instance_ids=list(spec.instance_ids),
        vcpus=spec.vcpus,
        memory_mb=spec.memory_mb,
        root_gb=spec.root_gb,
        ephemeral_gb=spec.ephemeral_gb,
        swap_mb=spec.swap_mb,
        project_id=spec.project_id,
        availability_zone=spec.availability_zone,
        flavor_extra_specs=dict(spec.flavor_extra_specs),
        image_id=spec.image_id,
        image_properties=dict(spec.image_properties),
        group_policy=spec.group_policy,
        group_hosts=list(spec.group_hosts),
        same_host=list(spec.same_host),
        different_host=list(spec.different_host),
        ignore_hosts=list(spec.ignore_hosts),
        min_count=spec.min_count,
        group_max_server_per_host=spec.group_max_server_per_host or 1,
    )


def upsert_kwargs(r: scheduler_pb2.HostReport) -> dict[str, Any]:
    return dict(
        vcpus=r.vcpus,
        memory_mb=r.memory_mb,
        disk_gb=r.disk_gb,
        reserved_vcpus=r.reserved_vcpus,
        reserved_memory_mb=r.reserved_memory_mb,
        reserved_disk_gb=r.reserved_disk_gb,
        cpu_allocation_ratio=r.cpu_allocation_ratio or 16.0,
        ram_allocation_ratio=r.ram_allocation_ratio or 1.5,
        disk_allocation_ratio=r.disk_allocation_ratio or 1.0,
        availability_zone=r.availability_zone or "nova",
        enabled=r.enabled,
        up=True,
        io_ops=r.io_ops,
        num_instances=r.num_instances,
        failed_builds=r.failed_builds,
        hypervisor_type=r.hypervisor_type,
        hypervisor_version=r.hypervisor_version,
        cpu_arch=r.cpu_arch,
        capabilities=dict(r.capabilities),
        aggregates=[(a.name, dict(a.metadata)) for a in r.aggregates],
        generation=r.generation,
        traits=list(r.traits),
        cpu_info=r.cpu_info,
        supported_instances=[(s.arch, s.hypervisor_type, s.vm_mode) for s in r.supported_instances],
    )


def explanation(e: Any) -> types_pb2.Explanation:
    out = types_pb2.Explanation(
        hosts_total=e.hosts_total,
        hosts_passed=e.hosts_passed,
        summary=e.summary,
        elapsed_us=e.elapsed_us,
    )
    for r in e.rejections:
        out.rejections.append(
            types_pb2.FilterRejection(filter=r.filter, rejected=r.rejected, sample_reasons=list(r.sample_reasons))
        )
    for h in e.top_hosts:
        out.top_hosts.append(types_pb2.WeighedHost(host=h.host, weight=h.weight, weights=dict(h.weights)))
    return out


def host_state(h: Any, agent_address: str) -> scheduler_pb2.HostState:
    return scheduler_pb2.HostState(
        host=h.host,
        agent_address=agent_address,
        enabled=h.enabled,
        up=h.up,
        availability_zone=h.availability_zone,
        vcpus=h.vcpus,
        vcpus_used=h.vcpus_used,
        memory_mb=h.memory_mb,
        memory_mb_used=h.memory_mb_used,
        disk_gb=h.disk_gb,
        disk_gb_used=h.disk_gb_used,
        num_instances=h.num_instances,
        io_ops=h.io_ops,
        cpu_allocation_ratio=h.cpu_allocation_ratio,
        ram_allocation_ratio=h.ram_allocation_ratio,
        disk_allocation_ratio=h.disk_allocation_ratio,
        hypervisor_type=h.hypervisor_type,
        hypervisor_version=h.hypervisor_version,
        traits=h.traits,
        cpu_info=h.cpu_info,
        supported_instances=[
            scheduler_pb2.SupportedInstance(arch=a, hypervisor_type=t, vm_mode=m) for a, t, m in h.supported_instances
        ],
    )
