"""Images: host files only from the image directories (admin), uploads with size and checksum
(members), owner-only deletes, nothing deleted from under a server."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import grpc
import pytest

from drover.cli.client import upload_image
from drover.v1 import api_pb2
from tests.integration.conftest import watch


def _code(call) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def _names(stub) -> set[str]:
    return {i.name for i in stub.ListImages(api_pb2.ListImagesRequest(), timeout=10).images}


def test_host_files_outside_the_image_directories_are_refused(mesh, api) -> None:
    images = mesh.data_dir / "images"
    images.mkdir(exist_ok=True)
    (images / "escape").unlink(missing_ok=True)
    os.symlink("/etc/passwd", images / "escape")
    fifo = images / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    for path in ("/etc/shadow", "/etc/passwd", "/proc/self/environ", str(images / ".." / ".." / "etc" / "passwd"),
                 "../../etc/passwd", str(images / "escape"), str(fifo), "/dev/zero", str(images)):
        with pytest.raises(grpc.RpcError) as err:
            api.CreateImage(api_pb2.CreateImageRequest(name="stolen", path=path, disk_format="raw"), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, path
        assert "root:" not in err.value.details()
    with pytest.raises(grpc.RpcError) as err:  # an initrd is confined the same way
        api.CreateImage(api_pb2.CreateImageRequest(name="stolen", path=str(images / "disk.raw"),
                                                   initrd_path="/etc/shadow", disk_format="kernel"), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "stolen" not in _names(api)


def test_only_an_admin_registers_host_files(as_caller, image_file) -> None:
    member = as_caller("img-p", "member")
    assert _code(lambda: member.CreateImage(api_pb2.CreateImageRequest(name="mine", path=str(image_file)),
                                            timeout=10)) == grpc.StatusCode.PERMISSION_DENIED


def test_a_member_uploads_a_private_image_checked_by_size_and_checksum(mesh, as_caller, tmp_path) -> None:
    member, stranger = as_caller("img-p", "member"), as_caller("other-p", "member")
    data = os.urandom(3 * (1 << 20) + 123)  # several chunks
    (tmp_path / "up.raw").write_bytes(data)
    img = upload_image(member, str(tmp_path / "up.raw"), "uploaded")
    assert (img.size_bytes, img.checksum_sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert (img.owner, img.visibility, img.disk_format) == ("img-p", "private", "raw")
    assert Path(img.path).read_bytes() == data and img.path.startswith(str(mesh.data_dir))
    # Private: another project neither sees nor uses it, by id or by name.
    assert "uploaded" not in _names(stranger)
    assert _code(lambda: stranger.GetImage(api_pb2.GetImageRequest(id=img.id), timeout=10)) \
        == grpc.StatusCode.NOT_FOUND
    for ref in (img.id, "uploaded"):
        assert _code(lambda r=ref: stranger.CreateServer(api_pb2.CreateServerRequest(
            name="x", flavor_ref="m1.tiny", image_ref=r), timeout=10)) == grpc.StatusCode.NOT_FOUND
    assert _code(lambda: stranger.DeleteImage(api_pb2.DeleteImageRequest(id=img.id), timeout=10)) \
        == grpc.StatusCode.NOT_FOUND
    # Its owner boots it, cannot delete it while the server exists, then can.
    server = member.CreateServer(api_pb2.CreateServerRequest(name="from-upload", flavor_ref="m1.tiny",
                                                             image_ref="uploaded"), timeout=10).server
    assert watch(member, server.id)[-1].server.image_id == img.id
    assert _code(lambda: member.DeleteImage(api_pb2.DeleteImageRequest(id=img.id), timeout=10)) \
        == grpc.StatusCode.FAILED_PRECONDITION
    member.DeleteServer(api_pb2.DeleteServerRequest(id=server.id), timeout=10)
    watch(member, server.id)
    member.DeleteImage(api_pb2.DeleteImageRequest(id=img.id), timeout=10)
    assert not os.path.exists(img.path)


def _upload(stub, meta: api_pb2.UploadImageMetadata, chunks: list[bytes]) -> grpc.RpcError:
    def requests():
        yield api_pb2.UploadImageRequest(metadata=meta)
        for c in chunks:
            yield api_pb2.UploadImageRequest(chunk=c)

    with pytest.raises(grpc.RpcError) as err:
        stub.UploadImage(requests(), timeout=30)
    return err.value


def test_bad_uploads_store_nothing(mesh, as_caller) -> None:
    member = as_caller("img-p", "member")
    body = b"x" * 5000
    good = hashlib.sha256(body).hexdigest()
    backing = b"QFI\xfb" + b"\0\0\0\x03" + (1024).to_bytes(8, "big") + b"\0" * 100
    cases = {
        "checksum": (api_pb2.UploadImageMetadata(name="bad", size_bytes=5000, checksum_sha256="0" * 64), [body]),
        "short": (api_pb2.UploadImageMetadata(name="bad", size_bytes=6000, checksum_sha256=good), [body]),
        "long": (api_pb2.UploadImageMetadata(name="bad", size_bytes=4000, checksum_sha256=good), [body]),
        "too big": (api_pb2.UploadImageMetadata(name="bad", size_bytes=1 << 50, checksum_sha256=good), [body]),
        "kernel": (api_pb2.UploadImageMetadata(name="bad", size_bytes=5000, checksum_sha256=good,
                                               disk_format="kernel"), [body]),
        "backing file": (api_pb2.UploadImageMetadata(name="bad", size_bytes=len(backing),
                                                     checksum_sha256=hashlib.sha256(backing).hexdigest()), [backing]),
    }
    for case, (meta, chunks) in cases.items():
        assert _upload(member, meta, chunks).code() == grpc.StatusCode.INVALID_ARGUMENT, case
    assert "bad" not in _names(member)
    uploads = mesh.data_dir / "images" / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())  # no partial file left behind
    reader = as_caller("img-p", "reader")
    meta = api_pb2.UploadImageMetadata(name="bad", size_bytes=5000, checksum_sha256=good)
    assert _upload(reader, meta, [body]).code() == grpc.StatusCode.PERMISSION_DENIED


def test_only_the_owner_or_an_admin_deletes(api, as_caller, image_file) -> None:
    shared = api.CreateImage(api_pb2.CreateImageRequest(name="shared", path=str(image_file), disk_format="raw"),
                             timeout=10).image
    member = as_caller("img-p", "member")
    assert "shared" in _names(member)
    assert _code(lambda: member.DeleteImage(api_pb2.DeleteImageRequest(id=shared.id), timeout=10)) \
        == grpc.StatusCode.PERMISSION_DENIED
    api.DeleteImage(api_pb2.DeleteImageRequest(id=shared.id), timeout=10)
    assert "shared" not in _names(member)
