"""CreateServer body checks, after Nova's ServersController.create.

Each check appends (field, description) pairs; the caller turns them into one
INVALID_ARGUMENT with a google.rpc.BadRequest listing every bad field.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from dataclasses import dataclass, field

from drover.v1 import api_pb2

MAX_NAME = 255
MAX_COUNT = 1000
MAX_METADATA_ITEMS = 128


@dataclass
class CheckedCreate:
    name: str
    min_count: int
    max_count: int
    violations: list[tuple[str, str]] = field(default_factory=list)


def check_name(raw: str, field_name: str = "name") -> tuple[str, list[tuple[str, str]]]:
    """Nova: name is required, 1–255 characters, stripped of surrounding whitespace."""
    if raw is None or raw == "":
        return "", [(field_name, "is required")]
    name = raw.strip()
    if not name:
        return "", [(field_name, "must contain something other than whitespace")]
    if len(name) > MAX_NAME:
        return name, [(field_name, f"must be at most {MAX_NAME} characters (got {len(name)})")]
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        return name, [(field_name, "must not contain control characters")]
    return name, []


def check_access_ips(req: api_pb2.CreateServerRequest) -> list[tuple[str, str]]:
    out = []
    if req.access_ipv4:
        try:
            ipaddress.IPv4Address(req.access_ipv4)
        except ValueError:
            out.append(("access_ipv4", f"{req.access_ipv4!r} is not a valid IPv4 address"))
    if req.access_ipv6:
        try:
            ipaddress.IPv6Address(req.access_ipv6)
        except ValueError:
            out.append(("access_ipv6", f"{req.access_ipv6!r} is not a valid IPv6 address"))
    return out


def check_counts(req: api_pb2.CreateServerRequest) -> tuple[int, int, list[tuple[str, str]]]:
    out = []
    min_count = req.min_count or 1
    max_count = req.max_count or min_count
    if req.min_count < 0:
        out.append(("min_count", "must be at least 1"))
    if req.max_count < 0:
        out.append(("max_count", "must be at least 1"))
    if max_count < min_count:
        out.append(("max_count", f"must not be smaller than min_count ({min_count})"))
    if max_count > MAX_COUNT:
        out.append(("max_count", f"must be at most {MAX_COUNT}"))
    return min_count, max_count, out


def check_metadata(req: api_pb2.CreateServerRequest) -> list[tuple[str, str]]:
    out = []
    if len(req.metadata) > MAX_METADATA_ITEMS:
        out.append(("metadata", f"at most {MAX_METADATA_ITEMS} items"))
    for key, value in req.metadata.items():
        if not key or len(key) > 255:
            out.append((f"metadata[{key!r}]", "keys must be 1–255 characters"))
        if len(value) > 255:
            out.append((f"metadata[{key!r}]", "values must be at most 255 characters"))
    return out


def check_network_shapes(req: api_pb2.CreateServerRequest) -> list[tuple[str, str]]:
    """Shape only; existence and CIDR membership are checked against the store."""
    out = []
    specials = [n.uuid for n in req.networks if n.uuid in ("auto", "none")]
    if specials and len(req.networks) > 1:
        out.append(("networks", "'auto' and 'none' must be the only entry"))
    seen: set[str] = set()
    for i, n in enumerate(req.networks):
        if not n.uuid:
            out.append((f"networks[{i}].uuid", "is required"))
        if n.fixed_ip:
            try:
                ipaddress.ip_address(n.fixed_ip)
            except ValueError:
                out.append((f"networks[{i}].fixed_ip", f"{n.fixed_ip!r} is not a valid IP address"))
            if n.fixed_ip in seen:
                out.append((f"networks[{i}].fixed_ip", f"{n.fixed_ip} is requested twice"))
            seen.add(n.fixed_ip)
    if seen and (req.min_count > 1 or req.max_count > 1):
        out.append(("networks", "a fixed IP cannot be requested for more than one server"))
    return out


def check_create(req: api_pb2.CreateServerRequest) -> CheckedCreate:
    name, bad = check_name(req.name)
    if not req.flavor_ref.strip():
        bad.append(("flavor_ref", "is required"))
    if not req.image_ref.strip():
        bad.append(("image_ref", "is required"))
    min_count, max_count, count_bad = check_counts(req)
    bad += count_bad
    bad += check_access_ips(req)
    bad += check_metadata(req)
    bad += check_network_shapes(req)
    return CheckedCreate(name=name, min_count=min_count, max_count=max_count, violations=bad)
