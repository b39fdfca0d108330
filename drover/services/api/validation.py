"""Request checks at the API edge: size bounds on every request, and CreateServer's body checks
(after Nova's ServersController.create).

Each check appends (field, description) pairs; the caller turns them into one
INVALID_ARGUMENT with a google.rpc.BadRequest listing every bad field.

Bounds: every string of every ApiService request is at most ``MAX_STRING`` characters, without
NUL characters (which PostgreSQL's text columns refuse), and every
list or map at most ``MAX_LIST`` entries unless ``STRING_LIMITS`` / ``LIST_LIMITS`` say otherwise;
the integers in ``INT_LIMITS`` stay in their range. ``check_bounds`` enforces them for every RPC
before its method runs (api.proto documents the same numbers), so nothing unbounded reaches the
store, the scheduler's Rust core or a regex engine.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from drover.v1 import api_pb2

MAX_NAME = 255
MAX_COUNT = 1000
MAX_METADATA_ITEMS = 128

MAX_STRING = 255
MAX_LIST = 64
MAX_PATH = 4096
MAX_PAGE_TOKEN = 256
MAX_NETWORKS = 32
MAX_HINT_SERVERS = 64
MAX_PROPERTY_VALUE = 1024
# Flavor and image sizes: beyond any real machine, far inside the Rust core's 64-bit arithmetic
# even times MAX_COUNT servers.
MAX_VCPUS = 4096
MAX_MEMORY_MB = 16 * 1024 * 1024  # 16 TiB
MAX_DISK_GB = 1024 * 1024  # 1 PiB
MAX_SWAP_MB = 1024 * 1024  # 1 TiB
MAX_CONSOLE_LINES = 10_000
# An upload chunk (UploadImage); the API's receive limit allows one chunk with its envelope.
MAX_CHUNK_BYTES = 1024 * 1024
# The API's gRPC receive limit: above the largest legal request (an upload chunk with its envelope;
# a CreateServer at every limit, 4-byte UTF-8 throughout, is under 0.5 MiB), far below gRPC's usual 4 MiB+.
MAX_REQUEST_BYTES = 2 * MAX_CHUNK_BYTES

_P = "drover.v1."
STRING_LIMITS: dict[str, int] = {
    _P + "CreateImageRequest.path": MAX_PATH,
    _P + "CreateImageRequest.initrd_path": MAX_PATH,
    _P + "CreateImageRequest.PropertiesEntry.value": MAX_PROPERTY_VALUE,
    _P + "UploadImageMetadata.PropertiesEntry.value": MAX_PROPERTY_VALUE,
    _P + "ListServersRequest.page_token": MAX_PAGE_TOKEN,
    _P + "NetworkRequest.fixed_ip": 64,
    _P + "CreateServerRequest.access_ipv4": 64,
    _P + "CreateServerRequest.access_ipv6": 64,
}
LIST_LIMITS: dict[str, int] = {
    _P + "CreateServerRequest.networks": MAX_NETWORKS,
    _P + "CreateServerRequest.metadata": MAX_METADATA_ITEMS,
    _P + "SchedulerHints.same_host": MAX_HINT_SERVERS,
    _P + "SchedulerHints.different_host": MAX_HINT_SERVERS,
}
BYTES_LIMITS: dict[str, int] = {}
INT_LIMITS: dict[str, tuple[int, int]] = {
    _P + "Flavor.vcpus": (0, MAX_VCPUS),
    _P + "Flavor.memory_mb": (0, MAX_MEMORY_MB),
    _P + "Flavor.root_gb": (0, MAX_DISK_GB),
    _P + "Flavor.ephemeral_gb": (0, MAX_DISK_GB),
    _P + "Flavor.swap_mb": (0, MAX_SWAP_MB),
    _P + "CreateImageRequest.min_disk_gb": (0, MAX_DISK_GB),
    _P + "CreateImageRequest.min_ram_mb": (0, MAX_MEMORY_MB),
    _P + "UploadImageMetadata.min_disk_gb": (0, MAX_DISK_GB),
    _P + "UploadImageMetadata.min_ram_mb": (0, MAX_MEMORY_MB),
    _P + "GetConsoleOutputRequest.length": (0, MAX_CONSOLE_LINES),
    _P + "WatchServerRequest.since_revision": (0, 2**53),
    _P + "CreateServerRequest.min_count": (0, MAX_COUNT),
    _P + "CreateServerRequest.max_count": (0, MAX_COUNT),
}


def _is_map(fd: FieldDescriptor) -> bool:
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


def _scalar(fd: FieldDescriptor, value: object, path: str, out: list[tuple[str, str]]) -> None:
    if fd.type == FieldDescriptor.TYPE_STRING:
        limit = STRING_LIMITS.get(fd.full_name, MAX_STRING)
        if len(value) > limit:  # type: ignore[arg-type]
            out.append((path, f"must be at most {limit} characters (got {len(value)})"))  # type: ignore[arg-type]
        elif "\0" in value:  # type: ignore[operator]  # PostgreSQL text cannot hold NUL; no name needs one
            out.append((path, "must not contain NUL characters"))
    elif fd.type == FieldDescriptor.TYPE_BYTES:
        limit = BYTES_LIMITS.get(fd.full_name, MAX_STRING)
        if len(value) > limit:  # type: ignore[arg-type]
            out.append((path, f"must be at most {limit} bytes"))
    elif fd.full_name in INT_LIMITS:
        lo, hi = INT_LIMITS[fd.full_name]
        if not lo <= value <= hi:  # type: ignore[operator]
            out.append((path, f"must be between {lo} and {hi}"))


def check_bounds(msg: Message, prefix: str = "") -> list[tuple[str, str]]:
    """Every string, list, map and bounded integer of ``msg`` (recursively) within its limit."""
    out: list[tuple[str, str]] = []
    for fd, value in msg.ListFields():  # only the fields that are set: cheap on the hot path
        path = prefix + fd.name
        if fd.is_repeated:
            limit = LIST_LIMITS.get(fd.full_name, MAX_LIST)
            if len(value) > limit:
                out.append((path, f"at most {limit} entries (got {len(value)})"))
                continue
            if _is_map(fd):
                entry: Descriptor = fd.message_type  # type: ignore[assignment]  # a map has one
                key_fd, value_fd = entry.fields_by_name["key"], entry.fields_by_name["value"]
                for k, v in value.items():
                    _scalar(key_fd, k, f"{path}[{str(k)[:32]!r}]", out)
                    if value_fd.message_type is not None:
                        out += check_bounds(v, f"{path}[{str(k)[:32]!r}].")
                    else:
                        _scalar(value_fd, v, f"{path}[{str(k)[:32]!r}]", out)
            elif fd.message_type is not None:
                for i, item in enumerate(value):
                    out += check_bounds(item, f"{path}[{i}].")
            else:
                for i, item in enumerate(value):
                    _scalar(fd, item, f"{path}[{i}]", out)
        elif fd.message_type is not None:
            out += check_bounds(value, path + ".")
        else:
            _scalar(fd, value, path, out)
    return out


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


# Checks of meaning that the method runs, by request type: when the edge refuses a request for
# its bounds it adds these, so a caller learns every bad field at once (Nova reports them together).
_MEANING: dict[type[Message], Callable[[Any], list[tuple[str, str]]]] = {
    api_pb2.CreateServerRequest: lambda req: check_create(req).violations,
}


def refusals(msg: Message) -> list[tuple[str, str]]:
    """Every field violation of ``msg`` the edge reports: its bounds, then (if any bound is broken)
    the method's own checks of the fields not already named."""
    bad = check_bounds(msg)
    meaning = _MEANING.get(type(msg))
    if bad and meaning is not None:
        named = {name for name, _ in bad}
        bad += [(name, why) for name, why in meaning(msg) if name not in named]
    return bad
