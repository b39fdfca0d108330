"""Run drover's scheduler on a conformance case: the Rust core, or the Python reference.

Each host is reported the way a compute agent reports it (``upsert_host``), its usage is set
with claims (the Placement allocations) and then a second report at a newer generation sets the
instance and I/O counters the compute counted (a claim bumps them, a report overrides them).
Each request is an ``explain`` on that state: the same computation as ``select``, no claim left.

The answers have the shape of ``nova_run``'s: chosen hosts, and the first instance's best
``TOP`` hosts with their weights.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from drover import scheduler_core as sc
from drover.scheduling import reference as ref

from .fleet import host_rows

TOP = 10


class _Table(Protocol):
    def upsert_host(self, host: str, **kw: Any) -> bool: ...
    def claim(self, instance_id: str, host: str, *, vcpus: int, memory_mb: int, disk_gb: int) -> None: ...


def host_report(h: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    """``upsert_host`` keyword arguments for one host of the case."""
    return dict(
        vcpus=h["vcpus"],
        memory_mb=h["memory_mb"],
        disk_gb=h["disk_gb"],
        reserved_vcpus=h["reserved_vcpus"],
        reserved_memory_mb=h["reserved_memory_mb"],
        reserved_disk_gb=h["reserved_disk_gb"],
        cpu_allocation_ratio=h["cpu_allocation_ratio"],
        ram_allocation_ratio=h["ram_allocation_ratio"],
        disk_allocation_ratio=h["disk_allocation_ratio"],
        enabled=h["enabled"],
        up=h["up"],
        io_ops=h["io_ops"],
        num_instances=h["num_instances"],
        failed_builds=h["failed_builds"],
        hypervisor_type=h["hypervisor_type"],
        hypervisor_version=h["hypervisor_version"],
        cpu_arch=h["cpu_info"]["arch"],
        capabilities=h["stats"],
        cpu_info=json.dumps(h["cpu_info"]),
        supported_instances=[tuple(t) for t in h["supported_instances"]],
        traits=h["traits"],
        aggregates=[(case["aggregates"][i]["name"], case["aggregates"][i]["metadata"]) for i in h["aggregates"]],
    )


def load(table: _Table, case: dict[str, Any]) -> None:
    for h in host_rows(case):
        report = host_report(h, case)
        table.upsert_host(h["name"], generation=0, **report)
        if h["vcpus_used"] or h["memory_mb_used"] or h["disk_gb_used"]:
            table.claim(
                f"usage-{h['name']}",
                h["name"],
                vcpus=h["vcpus_used"],
                memory_mb=h["memory_mb_used"],
                disk_gb=h["disk_gb_used"],
            )
            table.upsert_host(h["name"], generation=1, **report)


def request_kwargs(req: dict[str, Any]) -> dict[str, Any]:
    group = req["group"] or {}
    return dict(
        instance_ids=req["instance_ids"],
        vcpus=req["vcpus"],
        memory_mb=req["memory_mb"],
        root_gb=req["root_gb"],
        ephemeral_gb=req["ephemeral_gb"],
        availability_zone=req["availability_zone"],
        flavor_extra_specs=req["flavor_extra_specs"],
        image_properties=req["image_properties"],
        project_id="p1",
        group_policy=group.get("policy", ""),
        group_hosts=[host for _, host in group.get("members", [])],
        group_max_server_per_host=group.get("rules", {}).get("max_server_per_host", 1),
    )


def _best(weighed: list[tuple[str, float]]) -> list[list[Any]]:
    order = sorted(range(len(weighed)), key=lambda i: -weighed[i][1])  # stable: table order on ties
    return [[weighed[i][0], weighed[i][1]] for i in order[:TOP]]


def run_core(case: dict[str, Any]) -> list[dict[str, Any]]:
    table = sc.HostTable(sc.SchedulerConfig(seed=1, **case["config"]))
    load(table, case)
    order = [h.host for h in table.hosts()]
    filters = sc.SchedulerConfig().enabled_filters
    out = []
    for req in case["requests"]:
        spec = sc.RequestSpec(**request_kwargs(req))
        result = table.explain(spec)
        passing = set(order)
        for f in filters:
            passing &= set(table.debug_filter_hosts(f, spec))
        weighed = table.debug_weigh([h for h in order if h in passing], spec) if passing else []
        ok = bool(result.selections)
        out.append(
            {
                "ok": ok,
                "hosts": [s.host for s in result.selections],
                "top": _best(weighed) if len(weighed) > 1 else [[h, 0.0] for h, _ in weighed],
                "passed": result.explanation.hosts_passed,
            }
        )
    return out


def run_reference(case: dict[str, Any]) -> list[dict[str, Any]]:
    oracle = ref.ReferenceScheduler(ref.Config(seed=1, **case["config"]))
    load(oracle, case)
    out = []
    for req in case["requests"]:
        res = oracle.explain(ref.RequestSpec(**request_kwargs(req)))
        top = [[h, w] for h, w in res.weighed[:TOP]]
        if len(res.weighed) == 1:
            top = [[top[0][0], 0.0]]
        out.append({"ok": res.ok, "hosts": [s.host for s in res.selections], "top": top, "passed": res.hosts_passed})
    return out


ENGINES = {"core": run_core, "reference": run_reference}
