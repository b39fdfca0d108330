"""Hostile inputs found by probing a running mesh after issue #10's work: each is refused at the
edge with the right status, stores nothing, and leaves the services serving."""

from __future__ import annotations

import hashlib
import threading
import time

import grpc
import jwt
import pytest

from drover.auth import keys, tokens
from drover.localmesh import LocalMesh
from drover.v1 import api_pb2, api_pb2_grpc, types_pb2
from tests.integration.conftest import _wait_hosts, count_servers, create, watch


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    """conftest's mesh, with a short upload idle timeout."""
    m = LocalMesh.on_free_ports(tmp_path_factory.mktemp("probe"), COMPUTE__FAKE_HOSTS="2",
                                COMPUTE__REPORT_INTERVAL="1", API__UPLOAD_IDLE_TIMEOUT="2")
    m.start()
    _wait_hosts(m, 2)
    yield m
    m.stop()

# A NUL character in any request string: PostgreSQL's text columns refuse it, so it reached the
# store as a DataError (INTERNAL) — in the create's columns and in every lookup by id or name.
NUL_CALLS = {
    "key_name": lambda api, image: api.CreateServer(api_pb2.CreateServerRequest(
        name="nul", flavor_ref="m1.tiny", image_ref=image.id, key_name="k\0"), timeout=30),
    "availability_zone": lambda api, image: api.CreateServer(api_pb2.CreateServerRequest(
        name="nul", flavor_ref="m1.tiny", image_ref=image.id, availability_zone="nova\0"), timeout=30),
    "metadata": lambda api, image: api.CreateServer(api_pb2.CreateServerRequest(
        name="nul", flavor_ref="m1.tiny", image_ref=image.id, metadata={"k\0": "v"}), timeout=30),
    "id": lambda api, image: api.GetServer(api_pb2.GetServerRequest(id="a\0"), timeout=10),
    "host": lambda api, image: api.ListServers(api_pb2.ListServersRequest(host="h\0"), timeout=10),
    "name": lambda api, image: api.ListServers(api_pb2.ListServersRequest(name="n\0"), timeout=10),
    "image id": lambda api, image: api.GetImage(api_pb2.GetImageRequest(id="i\0"), timeout=10),
    "flavor id": lambda api, image: api.GetFlavor(api_pb2.GetFlavorRequest(id="f\0"), timeout=10),
    "flavor extra spec": lambda api, image: api.CreateFlavor(api_pb2.CreateFlavorRequest(flavor=types_pb2.Flavor(
        name="nul-flavor", vcpus=1, memory_mb=64, extra_specs={"k": "\0"})), timeout=10),
}


def check_nul_refused(api, image) -> None:
    before = count_servers(api)
    for what, call in NUL_CALLS.items():
        with pytest.raises(grpc.RpcError) as err:
            call(api, image)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (what, err.value.code(), err.value.details())
        assert "NUL" in err.value.details(), what
    assert count_servers(api) == before


def test_nul_characters_are_invalid_arguments_and_store_nothing(api, image) -> None:
    check_nul_refused(api, image)


def _token_expiring_in(mesh, seconds: float, **overrides: str) -> str:
    """An admin token of the mesh's issuer that stops being accepted ``seconds`` from now: its exp
    is already past, within the verifier's leeway (so the test need not wait the leeway out)."""
    cfg = mesh.config()
    key = keys.load_signing_key(cfg.data_path)
    now = int(time.time())
    claims = {"iss": cfg.auth.issuer, "aud": cfg.auth.audience, "sub": "admin", "project_id": "admin",
              "roles": ["admin"], "iat": now - 60, "exp": now - int(cfg.auth.leeway) + int(seconds), **overrides}
    return jwt.encode(claims, key, algorithm=tokens.ALGORITHM, headers={"kid": keys.key_id(key)})


def test_a_watch_stream_ends_unauthenticated_when_its_token_expires(mesh, api, image) -> None:
    """Decision: a stream lives no longer than its token (Kubernetes bounds a watch by a timeout so
    clients re-authenticate; Nova has no streams). The client re-opens it with a new token."""
    server = create(api, "watch-expiry", image.id)
    watch(api, server.id)  # settled: ACTIVE
    with mesh.api_channel(_token_expiring_in(mesh, 3)) as chan:
        stream = api_pb2_grpc.ApiServiceStub(chan).WatchServer(
            api_pb2.WatchServerRequest(id=server.id, follow=True), timeout=30)
        first = next(stream)
        assert first.server.id == server.id
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as err:
            for _ in stream:
                pass
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, (err.value.code(), err.value.details())
    assert "expired" in err.value.details()
    assert time.monotonic() - started < 15
    assert api.GetServer(api_pb2.GetServerRequest(id=server.id), timeout=10).server.id == server.id


def _upload(api, data: bytes, name: str) -> types_pb2.Image:
    meta = api_pb2.UploadImageMetadata(name=name, disk_format="raw", size_bytes=len(data),
                                       checksum_sha256=hashlib.sha256(data).hexdigest())
    return api.UploadImage(iter([api_pb2.UploadImageRequest(metadata=meta), api_pb2.UploadImageRequest(chunk=data)]),
                           timeout=30).image


def test_an_uploaded_images_file_cannot_be_registered_again(mesh, api, as_caller) -> None:
    """The uploads live under the data dir's images/, an image directory by default: registered
    again as a public image, a project's private bytes were published, and deleting either image
    removed the file under the other."""
    member = as_caller("uploader")
    private = _upload(member, b"\x42" * 4096, "private-upload")
    uploaded = mesh.data_dir / "images" / "uploads" / f"{private.id}.raw"
    assert uploaded.exists()
    link = mesh.data_dir / "images" / "to-upload.raw"
    link.symlink_to(uploaded)
    before = len(api.ListImages(api_pb2.ListImagesRequest(), timeout=10).images)
    for path in (uploaded, link):
        with pytest.raises(grpc.RpcError) as err:
            api.CreateImage(api_pb2.CreateImageRequest(name="republished", path=str(path), disk_format="raw"),
                            timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
        assert "uploaded image" in err.value.details()
    assert len(api.ListImages(api_pb2.ListImagesRequest(), timeout=10).images) == before


def test_a_stalled_upload_is_abandoned_and_its_partial_file_removed(mesh, as_caller) -> None:
    """A slow-loris upload (metadata, some bytes, then nothing) held an open file and a stream for
    ever; now it ends after api.upload_idle_timeout (2 s on this mesh)."""
    member = as_caller("slow-loris")
    release = threading.Event()
    meta = api_pb2.UploadImageMetadata(name="stalled", disk_format="raw", size_bytes=1 << 20, checksum_sha256="0" * 64)

    def stalling():
        yield api_pb2.UploadImageRequest(metadata=meta)
        yield api_pb2.UploadImageRequest(chunk=b"\0" * 1024)
        release.wait(60)

    uploads = mesh.data_dir / "images" / "uploads"
    started = time.monotonic()
    try:
        with pytest.raises(grpc.RpcError) as err:
            member.UploadImage(stalling(), timeout=30)
    finally:
        release.set()
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, (err.value.code(), err.value.details())
    assert "abandoned" in err.value.details()
    assert time.monotonic() - started < 20
    assert not list(uploads.glob("*.part"))
    assert "stalled" not in {i.name for i in member.ListImages(api_pb2.ListImagesRequest(), timeout=10).images}


def test_the_sqlite_store_is_readable_by_drovers_user_only(mesh) -> None:
    """Internal ports need certificates, but drover.db (every project's servers, metadata and
    addresses) was world-readable (0644) to any local process."""
    files = list(mesh.data_dir.glob("drover.db*"))
    assert mesh.data_dir / "drover.db" in files
    for f in files:
        assert f.stat().st_mode & 0o077 == 0, (f.name, oct(f.stat().st_mode))


def test_a_token_naming_a_project_with_control_characters_is_unauthenticated(mesh) -> None:
    """The project and user claims are stored with every server and action: a NUL in one was an
    INTERNAL on PostgreSQL for every call the token made."""
    for claims in ({"project_id": "p\0"}, {"sub": "u\0"}, {"project_id": "p\n1"}):
        token = _token_expiring_in(mesh, 600, **claims)
        with mesh.api_channel(token) as chan, pytest.raises(grpc.RpcError) as err:
            api_pb2_grpc.ApiServiceStub(chan).ListServers(api_pb2.ListServersRequest(), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, (claims, err.value.code())
        assert "project or user" in err.value.details()


def test_upload_metadata_has_the_bounds_create_image_has(as_caller) -> None:
    """UploadImageMetadata's minimums were unbounded and its property values held to 255 characters,
    where CreateImageRequest (and api.proto for both) says 1024."""
    member = as_caller("bounds")
    data = b"\x24" * 4096
    meta = dict(name="bounded", disk_format="raw", size_bytes=len(data),
                checksum_sha256=hashlib.sha256(data).hexdigest())
    for bad in ({"min_ram_mb": 2**62}, {"min_disk_gb": 2**40}):
        with pytest.raises(grpc.RpcError) as err:
            member.UploadImage(iter([api_pb2.UploadImageRequest(metadata=api_pb2.UploadImageMetadata(**meta, **bad)),
                                     api_pb2.UploadImageRequest(chunk=data)]), timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert next(iter(bad)) in err.value.details()
    image = member.UploadImage(iter([
        api_pb2.UploadImageRequest(metadata=api_pb2.UploadImageMetadata(**meta, properties={"note": "n" * 1024})),
        api_pb2.UploadImageRequest(chunk=data)]), timeout=30).image
    assert image.properties["note"] == "n" * 1024


def test_only_an_admin_lists_deleted_servers_by_status(api, as_caller, image_file) -> None:
    """status=DELETED listed a project's deleted servers to its members, around the admin-only
    ListServers:include_deleted rule (Nova: "Only administrators may list deleted instances")."""
    member = as_caller("deleter")
    image = _upload(member, b"\x25" * 4096, "deleter-image")
    server = create(member, "gone", image.id)
    watch(member, server.id)
    member.DeleteServer(api_pb2.DeleteServerRequest(id=server.id), timeout=10)
    watch(api, server.id)  # until DELETED
    deleted = api_pb2.ListServersRequest(status=types_pb2.SERVER_STATUS_DELETED)
    with pytest.raises(grpc.RpcError) as err:
        member.ListServers(deleted, timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "include_deleted" in err.value.details()
    assert server.id in {s.id for s in api.ListServers(
        api_pb2.ListServersRequest(status=types_pb2.SERVER_STATUS_DELETED, all_projects=True), timeout=10).servers}
