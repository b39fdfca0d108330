"""Database rows → drover.v1 messages."""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.protobuf import json_format, timestamp_pb2

from drover.services.common import states
from drover.store import models as m
from drover.v1 import types_pb2 as t

_EPOCH = dt.datetime(1970, 1, 1)


def _seconds_nanos(value: dt.datetime) -> tuple[int, int]:
    """What Timestamp.FromDatetime computes (naive means UTC), without its per-call overhead:
    every published change carries four of these."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    delta = value - _EPOCH
    return delta.days * 86400 + delta.seconds, delta.microseconds * 1000


def ts(value: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    seconds, nanos = _seconds_nanos(value)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def _set_ts(msg: Any, field: str, value: dt.datetime | None) -> None:
    if value is not None:
        stamp = getattr(msg, field)
        stamp.seconds, stamp.nanos = _seconds_nanos(value)


def server(inst: Any) -> t.Server:
    """An ``m.Instance``, or any row or record with its attribute names, as a Server."""
    out = t.Server(
        id=inst.id,
        name=inst.name,
        status=states.STATUS_OF_VM_STATE.get(inst.vm_state, t.SERVER_STATUS_UNSPECIFIED),
        vm_state=states.VM_STATE_TO_PB.get(inst.vm_state, t.VM_STATE_UNSPECIFIED),
        task_state=states.TASK_STATE_TO_PB.get(inst.task_state, t.TASK_STATE_UNSPECIFIED),
        power_state=inst.power_state,  # type: ignore[arg-type]
        flavor_id=inst.flavor_id,
        image_id=inst.image_id,
        host=inst.host or "",
        availability_zone=inst.availability_zone or "",
        project_id=inst.project_id,
        user_id=inst.user_id,
        access_ipv4=inst.access_ip_v4 or "",
        access_ipv6=inst.access_ip_v6 or "",
        metadata={str(k): str(v) for k, v in (inst.metadata_ or {}).items()},
        reservation_id=inst.reservation_id or "",
        revision=inst.revision,
        key_name=inst.key_name or "",
    )
    for addr in inst.addresses or []:
        out.addresses.append(t.ServerAddress(**addr))
    if inst.fault_message:
        out.fault.CopyFrom(t.Fault(code=inst.fault_code, message=inst.fault_message, details=inst.fault_details))
        _set_ts(out.fault, "created_at", inst.fault_at)
    if inst.scheduler_explanation:
        json_format.ParseDict(inst.scheduler_explanation, out.scheduler_explanation, ignore_unknown_fields=True)
    _set_ts(out, "created_at", inst.created_at)
    _set_ts(out, "updated_at", inst.updated_at)
    _set_ts(out, "launched_at", inst.launched_at)
    _set_ts(out, "terminated_at", inst.terminated_at)
    return out


def action(act: m.InstanceAction) -> t.InstanceAction:
    out = t.InstanceAction(
        action=act.action,
        instance_id=act.instance_id,
        request_id=act.request_id,
        user_id=act.user_id,
        project_id=act.project_id,
        message=act.message or "",
    )
    _set_ts(out, "start_time", act.start_time)
    _set_ts(out, "finish_time", act.finish_time)
    for ev in act.events:
        pe = t.InstanceActionEvent(event=ev.event, result=ev.result or "", details=ev.details or "", host=ev.host)
        _set_ts(pe, "start_time", ev.start_time)
        _set_ts(pe, "finish_time", ev.finish_time)
        out.events.append(pe)
    return out


def flavor(f: m.Flavor) -> t.Flavor:
    return t.Flavor(
        id=f.id,
        name=f.name,
        vcpus=f.vcpus,
        memory_mb=f.memory_mb,
        root_gb=f.root_gb,
        ephemeral_gb=f.ephemeral_gb,
        swap_mb=f.swap_mb,
        is_public=f.is_public,
        disabled=f.disabled,
        extra_specs={str(k): str(v) for k, v in (f.extra_specs or {}).items()},
    )


def image(i: m.Image) -> t.Image:
    out = t.Image(
        id=i.id,
        name=i.name,
        status=t.IMAGE_STATUS_ACTIVE if i.status == "active" else t.IMAGE_STATUS_DELETED,
        disk_format=i.disk_format,
        path=i.path,
        initrd_path=i.initrd_path or "",
        size_bytes=i.size_bytes,
        checksum_sha256=i.checksum_sha256,
        min_disk_gb=i.min_disk_gb,
        min_ram_mb=i.min_ram_mb,
        properties={str(k): str(v) for k, v in (i.properties or {}).items()},
        owner=i.owner or "",
        visibility=i.visibility or "public",
    )
    _set_ts(out, "created_at", i.created_at)
    return out


def network(n: m.Network) -> t.Network:
    return t.Network(id=n.id, name=n.name, cidr=n.cidr, cidr_v6=n.cidr_v6 or "")


def explanation_to_json(expl: t.Explanation) -> dict[str, Any]:
    return json_format.MessageToDict(expl, preserving_proto_field_name=True)
