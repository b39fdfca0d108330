"""Run Nova's own scheduler code on a conformance case (needs Nova installed: see README.md).

Nova's real ``HostManager.get_filtered_hosts`` / ``get_weighed_hosts`` (its filter and weight
handlers, default ``enabled_filters`` and ``weight_classes``), real ``HostState`` objects filled
by ``HostState.update`` from real ``ComputeNode`` objects, and the loop of
``SchedulerManager._schedule``: filter, weigh, claim the first sorted host Placement accepts,
``_consume_selected_host``, next instance.

Nova delegates part of the decision to Placement, which is not Nova's code and is not installed
here; this module stands in for it with the rules Placement applies to a compute node's
inventory: capacity ``(total - reserved) * allocation_ratio`` against usage, required and
forbidden traits (flavor ``trait:X=required|forbidden``, image ``trait:X=required``; a disabled
service's node has ``COMPUTE_STATUS_DISABLED``, which Nova's ``compute_status_filter`` forbids)
and member_of for a requested availability zone (Nova's ``map_az_to_placement_aggregate``).

Two inputs are shaped by hand, both noted where they are set: ``service_is_up`` reads the case's
``up`` flag instead of a heartbeat store, and ``HostState.cpu_info`` is the parsed dict that
Nova's own filter tests use (a live ``ComputeNode.cpu_info`` is a JSON string, on which
``ImagePropertiesFilter``'s ``hw_maxphysaddr_bits`` check would raise).

Usage (inside the Nova venv): ``python -m tests.conformance.nova_run CASE.json > ANSWERS.json``.
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from typing import Any

import nova.conf
from nova import objects
from nova.scheduler import host_manager
from nova.scheduler.manager import SchedulerManager

from .fleet import host_rows

CONF = nova.conf.CONF
TOP = 10


def _configure() -> None:
    CONF([], project="nova", default_config_files=[])
    objects.register_all()
    logging.disable(logging.WARNING)  # Nova logs every down host and unparsable multiplier


class _Heartbeats:
    """``servicegroup.API`` stand-in: the case says which services are up."""

    def service_is_up(self, service: Any) -> bool:
        return bool(service["up"])


def _manager() -> host_manager.HostManager:
    # HostManager.__init__ reads cells and instances from the database; the filter and weigher
    # set-up it does is repeated here, with Nova's own loaders and default options.
    hm = host_manager.HostManager.__new__(host_manager.HostManager)
    hm.filter_handler = host_manager.filters.HostFilterHandler()
    classes = hm.filter_handler.get_matching_classes(CONF.filter_scheduler.available_filters)
    hm.filter_cls_map = {cls.__name__: cls for cls in classes}
    hm.filter_obj_map = {}
    hm.enabled_filters = hm._choose_host_filters(hm._load_filters())
    for f in hm.enabled_filters:
        if hasattr(f, "servicegroup_api"):
            f.servicegroup_api = _Heartbeats()
    hm.weight_handler = host_manager.weights.HostWeightHandler()
    hm.weighers = [cls() for cls in hm.weight_handler.get_matching_classes(CONF.filter_scheduler.weight_classes)]
    return hm


def _aggregates(case: dict[str, Any]) -> list[Any]:
    return [
        objects.Aggregate(id=i, uuid=str(uuid.UUID(int=i + 1)), name=a["name"], hosts=[], metadata=dict(a["metadata"]))
        for i, a in enumerate(case["aggregates"])
    ]


def _host_state(h: dict[str, Any], aggs: list[Any]) -> host_manager.HostState:
    free_ram = h["memory_mb"] - h["reserved_memory_mb"] - h["memory_mb_used"]
    free_disk = h["disk_gb"] - h["reserved_disk_gb"] - h["disk_gb_used"]
    compute = objects.ComputeNode(
        uuid=str(uuid.uuid5(uuid.NAMESPACE_DNS, h["name"])),
        host=h["name"],
        hypervisor_hostname=h["name"],
        memory_mb=h["memory_mb"],
        free_ram_mb=free_ram,
        local_gb=h["disk_gb"],
        local_gb_used=h["disk_gb_used"] + h["reserved_disk_gb"],
        free_disk_gb=free_disk,
        disk_available_least=None,
        vcpus=h["vcpus"],
        vcpus_used=h["vcpus_used"],
        updated_at=None,
        numa_topology=None,
        pci_device_pools=None,
        host_ip="192.0.2.1",
        hypervisor_type=h["hypervisor_type"],
        hypervisor_version=h["hypervisor_version"],
        cpu_info=json.dumps(h["cpu_info"]),
        supported_hv_specs=[objects.HVSpec.from_list(s) for s in h["supported_instances"]],
        stats={
            **h["stats"],
            "num_instances": str(h["num_instances"]),
            "io_workload": str(h["io_ops"]),
            "failed_builds": str(h["failed_builds"]),
        },
        metrics=None,
        cpu_allocation_ratio=h["cpu_allocation_ratio"],
        ram_allocation_ratio=h["ram_allocation_ratio"],
        disk_allocation_ratio=h["disk_allocation_ratio"],
    )
    hs = host_manager.HostState(h["name"], h["name"], "cell1")
    hs.update(
        compute=compute,
        service={"disabled": not h["enabled"], "up": h["up"], "host": h["name"]},
        aggregates=[aggs[i] for i in h["aggregates"]],
        inst_dict={},  # a request's server group members are set per request
    )
    # See the module docstring: the dict form Nova's filter tests use.
    hs.cpu_info = h["cpu_info"]
    return hs


class _Placement:
    """The allocation-candidate rules of Placement for one request (see module docstring)."""

    def __init__(self, hosts: list[dict[str, Any]], case: dict[str, Any]) -> None:
        self.by_name = {h["name"]: h for h in hosts}
        self.used = {h["name"]: [h["vcpus_used"], h["memory_mb_used"], h["disk_gb_used"]] for h in hosts}
        self.az_of = {}
        for h in hosts:
            azs = {case["aggregates"][i]["metadata"].get("availability_zone") for i in h["aggregates"]} - {None}
            self.az_of[h["name"]] = azs

    def fits(self, name: str, want: tuple[int, int, int]) -> bool:
        h = self.by_name[name]
        caps = (
            (h["vcpus"] - h["reserved_vcpus"]) * h["cpu_allocation_ratio"],
            (h["memory_mb"] - h["reserved_memory_mb"]) * h["ram_allocation_ratio"],
            (h["disk_gb"] - h["reserved_disk_gb"]) * h["disk_allocation_ratio"],
        )
        return all(u + w <= c for u, w, c in zip(self.used[name], want, caps, strict=True))

    def claim(self, name: str, want: tuple[int, int, int]) -> None:
        self.used[name] = [u + w for u, w in zip(self.used[name], want, strict=True)]

    def candidates(self, req: dict[str, Any], want: tuple[int, int, int], any_az: bool) -> list[str]:
        required, forbidden = traits_of(req)
        forbidden = forbidden | {"COMPUTE_STATUS_DISABLED"}
        az = req["availability_zone"]
        out = []
        for name, h in self.by_name.items():
            traits = set(h["traits"]) | (set() if h["enabled"] else {"COMPUTE_STATUS_DISABLED"})
            if not required <= traits or forbidden & traits:
                continue
            if az and any_az and az not in self.az_of[name]:
                continue
            if self.fits(name, want):
                out.append(name)
        return out


def traits_of(req: dict[str, Any]) -> tuple[set[str], set[str]]:
    """Required and forbidden traits as Nova's ResourceRequest reads them from flavor and image."""
    required: set[str] = set()
    forbidden: set[str] = set()
    for key, value in req["flavor_extra_specs"].items():
        if key.startswith("trait:"):
            if value == "required":
                required.add(key[len("trait:") :])
            elif value == "forbidden":
                forbidden.add(key[len("trait:") :])
    for key, value in req["image_properties"].items():
        if key.startswith("trait:") and value == "required":
            required.add(key[len("trait:") :])
    return required, forbidden


def _image_meta(props: dict[str, str]) -> Any:
    plain = {k: v for k, v in props.items() if not k.startswith("trait:")}
    traits = [k[len("trait:") :] for k, v in props.items() if k.startswith("trait:") and v == "required"]
    meta = objects.ImageMeta.from_dict({"properties": plain})
    if traits:
        meta.properties.traits_required = traits
    return meta


_MUTABLE = ("free_ram_mb", "free_disk_mb", "vcpus_used", "num_instances", "num_io_ops", "updated")


def run_request(
    case: dict[str, Any], hosts: list[dict[str, Any]], states: dict[str, Any], req: dict[str, Any]
) -> dict[str, Any]:
    """One request against the fleet as recorded; the host states are left as they were found."""
    group = req["group"]
    members_on: dict[str, list[str]] = {}
    if group:
        for member, host in group["members"]:
            members_on.setdefault(host, []).append(member)
    placement = _Placement(hosts, case)
    want = (req["vcpus"], req["memory_mb"], req["root_gb"] + req["ephemeral_gb"])
    any_az = any(a["metadata"].get("availability_zone") == req["availability_zone"] for a in case["aggregates"])
    names = set(placement.candidates(req, want, any_az))
    # provider summaries keep table order: Nova's stable sort breaks ties by it, as drover does
    candidates = [states[h["name"]] for h in hosts if h["name"] in names]
    saved = {name: {a: getattr(hs, a) for a in _MUTABLE} for name, hs in states.items() if name in names}
    for name, members in members_on.items():
        states[name].instances = {u: objects.Instance(uuid=u) for u in members}
    try:
        return _schedule(req, candidates, placement, want)
    finally:
        for name, attrs in saved.items():
            for a, v in attrs.items():
                setattr(states[name], a, v)
            states[name].instances = {}
        for name in members_on:
            states[name].instances = {}


def _schedule(
    req: dict[str, Any], current: list[Any], placement: _Placement, want: tuple[int, int, int]
) -> dict[str, Any]:
    group = req["group"]
    flavor = objects.Flavor(
        vcpus=req["vcpus"],
        memory_mb=req["memory_mb"],
        root_gb=req["root_gb"],
        ephemeral_gb=req["ephemeral_gb"],
        swap=0,
        extra_specs=dict(req["flavor_extra_specs"]),
    )
    instance_group = None
    if group:
        instance_group = objects.InstanceGroup(
            uuid=str(uuid.uuid4()),
            policy=group["policy"],
            policies=[group["policy"]],
            rules={k: int(v) for k, v in group["rules"].items()},
            # the API adds a multi-create's new instances to the group before scheduling
            members=[m for m, _ in group["members"]] + list(req["instance_ids"]),
            hosts=sorted({h for _, h in group["members"]}),
        )
    spec = objects.RequestSpec(
        flavor=flavor,
        num_instances=len(req["instance_ids"]),
        image=_image_meta(req["image_properties"]),
        instance_group=instance_group,
        availability_zone=req["availability_zone"] or None,
        ignore_hosts=None,
        force_hosts=None,
        force_nodes=None,
        requested_destination=None,
        scheduler_hints={},
        pci_requests=None,
        numa_topology=None,
        project_id="p1",
        is_bfv=False,
        requested_resources=[],
    )
    hm = _manager()
    chosen: list[str] = []
    top: list[list[Any]] = []
    hosts_passed = 0
    for num, instance_uuid in enumerate(req["instance_ids"]):
        spec.instance_uuid = instance_uuid
        filtered = list(hm.get_filtered_hosts(current, spec, num))
        if not filtered:
            break
        weighed = hm.get_weighed_hosts(filtered, spec)
        if num == 0:
            hosts_passed = len(filtered)
            top = [[w.obj.host, float(w.weight)] for w in weighed[:TOP]]
        current = [w.obj for w in weighed]  # host_subset_size 1: the best first
        # claim_resources: the first sorted host whose allocation Placement accepts
        claimed = next((h for h in current if placement.fits(h.host, want)), None)
        if claimed is None:
            break
        placement.claim(claimed.host, want)
        SchedulerManager._consume_selected_host(claimed, spec, instance_uuid=instance_uuid)
        chosen.append(claimed.host)
    ok = len(chosen) == len(req["instance_ids"])
    return {"ok": ok, "hosts": chosen if ok else [], "top": top, "passed": hosts_passed}


def run_case(case: dict[str, Any]) -> list[dict[str, Any]]:
    _configure()
    hosts = host_rows(case)
    aggs = _aggregates(case)
    states = {h["name"]: _host_state(h, aggs) for h in hosts}
    return [run_request(case, hosts, states, req) for req in case["requests"]]


def main() -> None:
    case = json.load(open(sys.argv[1]))  # noqa: SIM115 - a one-shot read
    json.dump(run_case(case), sys.stdout)


if __name__ == "__main__":
    main()
