"""Build Nova's RequestSpec for an instance from its flavor, image and hints."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from drover.store import models as m
from drover.v1 import scheduler_pb2


def build(
    instances: Iterable[Any],
    flavor: m.Flavor,
    image: m.Image,
    *,
    min_count: int = 0,
    ignore_hosts: Iterable[str] = (),
    same_host: Iterable[str] = (),
    different_host: Iterable[str] = (),
    group_policy: str = "",
    group_hosts: Iterable[str] = (),
    group_id: str = "",
) -> scheduler_pb2.RequestSpec:
    insts = list(instances)
    first: Any = insts[0]
    return scheduler_pb2.RequestSpec(
        instance_ids=[i.id for i in insts],
        project_id=first.project_id,
        vcpus=flavor.vcpus,
        memory_mb=flavor.memory_mb,
        root_gb=flavor.root_gb,
        ephemeral_gb=flavor.ephemeral_gb,
        swap_mb=flavor.swap_mb,
        availability_zone=first.availability_zone or "",
        flavor_extra_specs={str(k): str(v) for k, v in (flavor.extra_specs or {}).items()},
        image_id=image.id,
        image_properties={str(k): str(v) for k, v in (image.properties or {}).items()},
        group_policy=group_policy,
        group_hosts=list(group_hosts),
        same_host=list(same_host),
        different_host=list(different_host),
        ignore_hosts=list(ignore_hosts),
        min_count=min_count,
        group_id=group_id,
    )
