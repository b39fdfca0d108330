"""Every bad CreateServer input: the right status code, field-level details, and nothing stored."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from drover.v1 import api_pb2, types_pb2
from tests.integration.conftest import count_servers


def _details(err: grpc.RpcError) -> list:
    raw = dict(err.trailing_metadata())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(raw)
    out = []
    for d in status.details:
        for cls in (error_details_pb2.BadRequest, error_details_pb2.ResourceInfo, error_details_pb2.QuotaFailure,
                    error_details_pb2.PreconditionFailure):
            if d.Is(cls.DESCRIPTOR):
                msg = cls()
                d.Unpack(msg)
                out.append(msg)
    return out


def _fields(err: grpc.RpcError) -> set[str]:
    (bad,) = [d for d in _details(err) if isinstance(d, error_details_pb2.BadRequest)]
    return {v.field for v in bad.field_violations}


NET_ID = "__private__"

BAD = [
    ("missing name", dict(name=""), {"name"}),
    ("blank name", dict(name="   "), {"name"}),
    ("name too long", dict(name="x" * 256), {"name"}),
    ("control characters", dict(name="bad\x07name"), {"name"}),
    ("missing flavor", dict(flavor_ref=""), {"flavor_ref"}),
    ("missing image", dict(image_ref=""), {"image_ref"}),
    ("bad ipv4", dict(access_ipv4="300.1.2.3"), {"access_ipv4"}),
    ("ipv6 in ipv4", dict(access_ipv4="fe80::1"), {"access_ipv4"}),
    ("bad ipv6", dict(access_ipv6="not-an-ip"), {"access_ipv6"}),
    ("max below min", dict(min_count=3, max_count=2), {"max_count"}),
    ("negative count", dict(min_count=-1), {"min_count"}),
    ("too many", dict(max_count=5000), {"max_count"}),
    ("unknown network", dict(networks=[api_pb2.NetworkRequest(uuid="no-such-net")]), {"networks[0].uuid"}),
    ("empty network id", dict(networks=[api_pb2.NetworkRequest(uuid="")]), {"networks[0].uuid"}),
    ("fixed ip not an ip", dict(networks=[api_pb2.NetworkRequest(uuid=NET_ID, fixed_ip="10.16.0.x")]),
     {"networks[0].fixed_ip"}),
    ("fixed ip outside cidr", dict(networks=[api_pb2.NetworkRequest(uuid=NET_ID, fixed_ip="192.168.1.5")]),
     {"networks[0].fixed_ip"}),
    ("auto with others", dict(networks=[api_pb2.NetworkRequest(uuid="auto"), api_pb2.NetworkRequest(uuid=NET_ID)]),
     {"networks"}),
    ("several bad fields at once", dict(name="", access_ipv4="1.2.3", access_ipv6="::zz"),
     {"name", "access_ipv4", "access_ipv6"}),
    # A bound the edge checks beside a rule the method checks: both reported in one answer.
    ("a bound and a blank name at once", dict(name=" ", min_count=-1), {"name", "min_count"}),
]


@pytest.fixture(scope="module")
def network_id(api) -> str:
    return api.ListNetworks(api_pb2.ListNetworksRequest(), timeout=10).networks[0].id


@pytest.mark.parametrize(("case", "overrides", "fields"), BAD, ids=[b[0] for b in BAD])
def test_invalid_argument_with_field_violations(api, image, network_id, case, overrides, fields) -> None:
    body = dict(name="ok", flavor_ref="m1.tiny", image_ref=image.id)
    body.update(overrides)
    for n in body.get("networks", []):
        if n.uuid == NET_ID:
            n.uuid = network_id
    before = count_servers(api)
    with pytest.raises(grpc.RpcError) as err:
        api.CreateServer(api_pb2.CreateServerRequest(**body), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _fields(err.value) == fields
    assert "Traceback" not in err.value.details()
    assert count_servers(api) == before, "a rejected request stored something"


@pytest.mark.parametrize(("field", "value", "kind"), [("flavor_ref", "m9.nope", "flavor"),
                                                        ("image_ref", "no-such-image", "image")])
def test_unknown_flavor_or_image_is_not_found(api, image, field, value, kind) -> None:
    body = dict(name="ok", flavor_ref="m1.tiny", image_ref=image.id)
    body[field] = value
    before = count_servers(api)
    with pytest.raises(grpc.RpcError) as err:
        api.CreateServer(api_pb2.CreateServerRequest(**body), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    (info,) = [d for d in _details(err.value) if isinstance(d, error_details_pb2.ResourceInfo)]
    assert info.resource_type == kind and info.resource_name == value
    assert count_servers(api) == before


def test_fixed_ip_in_use_is_rejected(api, image, network_id) -> None:
    req = api_pb2.CreateServerRequest(name="fixed", flavor_ref="m1.tiny", image_ref=image.id,
                                      networks=[api_pb2.NetworkRequest(uuid=network_id, fixed_ip="10.16.200.7")])
    first = api.CreateServer(req, timeout=10).server
    final = list(api.WatchServer(api_pb2.WatchServerRequest(id=first.id), timeout=30))[-1].server
    assert [a.address for a in final.addresses] == ["10.16.200.7"]
    with pytest.raises(grpc.RpcError) as err:
        api.CreateServer(req, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _fields(err.value) == {"networks[0].fixed_ip"}


def test_unknown_server_is_not_found(api) -> None:
    for call, req in ((api.GetServer, api_pb2.GetServerRequest(id="nope")),
                      (api.DeleteServer, api_pb2.DeleteServerRequest(id="nope")),
                      (api.ListServerActions, api_pb2.ListServerActionsRequest(server_id="nope"))):
        with pytest.raises(grpc.RpcError) as err:
            call(req, timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        list(api.WatchServer(api_pb2.WatchServerRequest(id="nope"), timeout=10))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_bad_list_arguments(api) -> None:
    for req, field in ((api_pb2.ListServersRequest(name="(unclosed"), "name"),
                       (api_pb2.ListServersRequest(page_size=100000), "page_size"),
                       (api_pb2.ListServersRequest(page_token="garbage!!"), "page_token")):
        with pytest.raises(grpc.RpcError) as err:
            api.ListServers(req, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert _fields(err.value) == {field}


def test_image_registration_checks_its_file(api, tmp_path) -> None:
    with pytest.raises(grpc.RpcError) as err:
        api.CreateImage(api_pb2.CreateImageRequest(name="ghost", path=str(tmp_path / "missing.qcow2")), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _fields(err.value) == {"path"}
    names = [i.name for i in api.ListImages(api_pb2.ListImagesRequest(), timeout=10).images]
    assert "ghost" not in names


def test_non_admin_cannot_list_hosts_or_see_others(as_caller, image) -> None:
    tenant_a, tenant_b = as_caller("tenant-a"), as_caller("tenant-b")
    with pytest.raises(grpc.RpcError) as err:
        tenant_a.ListHosts(api_pb2.ListHostsRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    mine = tenant_a.CreateServer(api_pb2.CreateServerRequest(name="tenant-a-vm", flavor_ref="m1.tiny",
                                                             image_ref=image.id), timeout=10).server
    other = tenant_b.ListServers(api_pb2.ListServersRequest(), timeout=10).servers
    assert mine.id not in {s.id for s in other}
    with pytest.raises(grpc.RpcError) as err:
        tenant_b.GetServer(api_pb2.GetServerRequest(id=mine.id), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert mine.project_id == "tenant-a"
    assert mine.status == types_pb2.SERVER_STATUS_BUILD
