"""Property-based fuzz of every ApiService RPC: request messages generated from their descriptors
(hostile strings, extreme numbers, long lists, unknown enum values, real ids mixed in), sent as an
admin (the deepest paths) and as a member. No call may end INTERNAL or UNKNOWN, and the API stays
SERVING."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drover.v1 import api_pb2, api_pb2_grpc

SERVICE = api_pb2.DESCRIPTOR.services_by_name["ApiService"]
FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
INTS = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1), FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1), FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
}
# Strings an attacker would try, and references that exist (filled in by the fixture).
KNOWN: list[str] = ["auto", "none", "m1.tiny", "/etc/shadow", "../../etc/passwd", "/proc/self/environ",
                    "^(a|a)*$", "(x+x+)+y", "W1tbXV1d", "qcow2", "raw", "kernel", "affinity", "anti-affinity",
                    "10.0.0.5", "::1", "\x00", "\u202e", "a" * 256]


def _text() -> st.SearchStrategy[str]:
    # Deferred: the fixture adds real ids to KNOWN before the first example is drawn.
    return st.one_of(st.text(max_size=40), st.text(min_size=250, max_size=300),
                     st.deferred(lambda: st.sampled_from(KNOWN)))


def _scalar(fd: FieldDescriptor) -> st.SearchStrategy[Any]:
    if fd.type == FieldDescriptor.TYPE_STRING:
        return _text()
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=300)
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if fd.type == FieldDescriptor.TYPE_ENUM:
        return st.integers(-3, len(fd.enum_type.values) + 3)
    if fd.type in INTS:
        lo, hi = INTS[fd.type]
        edges = [v for v in (lo, hi, -1, 2**62, 2**53 + 1, 2**31) if lo <= v <= hi]
        return st.one_of(st.integers(-2, 4), st.integers(lo, hi), st.sampled_from(edges))
    return st.floats(allow_nan=True)


def message(desc: Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for fd in desc.fields:
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            key, value = fd.message_type.fields_by_name["key"], fd.message_type.fields_by_name["value"]
            fields[fd.name] = st.dictionaries(_scalar(key), _scalar(value), max_size=3 if depth else 140)
        elif fd.message_type is not None:
            if depth > 2 or fd.message_type.full_name.startswith("google.protobuf"):
                continue
            inner = message(fd.message_type, depth + 1)
            fields[fd.name] = st.lists(inner, max_size=40) if fd.is_repeated else inner
        elif fd.is_repeated:
            fields[fd.name] = st.one_of(st.lists(_scalar(fd), max_size=5), st.lists(_scalar(fd), min_size=60,
                                                                                     max_size=70))
        else:
            fields[fd.name] = _scalar(fd)
    # Any subset of the fields (a oneof keeps its last one).
    return st.fixed_dictionaries({}, optional=fields)


def build(desc: Descriptor, values: dict[str, Any]) -> Any:
    cls = {"UploadImageRequest": api_pb2.UploadImageRequest}.get(desc.name) or getattr(api_pb2, desc.name)
    msg = cls()
    _fill(msg, values)
    return msg


def _fill(msg: Any, values: dict[str, Any]) -> None:
    for name, value in values.items():
        fd = msg.DESCRIPTOR.fields_by_name[name]
        target = getattr(msg, name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            target.update(value)
        elif fd.message_type is not None and fd.is_repeated:
            for item in value:
                _fill(target.add(), item)
        elif fd.message_type is not None:
            _fill(target, value)
            if not value:
                target.SetInParent()
        elif fd.is_repeated:
            target.extend(value)
        else:
            setattr(msg, name, value)


@pytest.fixture(scope="module")
def stubs(mesh, api, image):
    KNOWN.extend([image.id, image.name])
    server = api.CreateServer(api_pb2.CreateServerRequest(name="fuzz-target", flavor_ref="m1.tiny",
                                                          image_ref=image.id), timeout=10).server
    KNOWN.append(server.id)
    member = api_pb2_grpc.ApiServiceStub(mesh.api_channel(mesh.issue_token("fuzz-p", "f", ["member"])))
    return {"admin": api, "member": member}


def _invoke(stub: Any, method: Any, request: Any) -> grpc.StatusCode:
    rpc = getattr(stub, method.name)
    try:
        if method.server_streaming:
            for _ in rpc(request, timeout=3):
                pass
        elif method.client_streaming:
            rpc(iter(request), timeout=5)
        else:
            rpc(request, timeout=10)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("method", list(SERVICE.methods), ids=lambda m: m.name)
def test_no_generated_request_ends_internal(method, stubs, mesh) -> None:
    desc = method.input_type
    strategy = st.lists(message(desc), min_size=1, max_size=4) if method.client_streaming else message(desc)

    @settings(max_examples=25, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(values=strategy, caller=st.sampled_from(["admin", "member"]))
    def check(values: Any, caller: str) -> None:
        request = [build(desc, v) for v in values] if method.client_streaming else build(desc, values)
        code = _invoke(stubs[caller], method, request)
        assert code not in FORBIDDEN, (method.name, caller, code, str(request)[:500])

    check()
    with grpc.insecure_channel(mesh.addresses["api"]) as chan:
        health = health_pb2_grpc.HealthStub(chan).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
