"""ApiService's image RPCs (Glance's part of the story).

An admin registers a file that already sits in one of the configured image directories
(CreateImage); a project member uploads bytes (UploadImage), kept under the data dir, private to
the project. Reading files, hashing and writing happen in threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from drover.auth.policy import Policy
from drover.config import DroverConfig
from drover.services.api import image_files, lookups, validation
from drover.services.api.edge import UNPARSABLE
from drover.services.api.identity import Identity, enforce, identity
from drover.services.common import convert, states
from drover.services.common.errors import ApiError, failed_precondition, guarded, invalid_argument, not_found
from drover.services.common.group_commit import GroupCommit
from drover.store import models as m
from drover.v1 import api_pb2

DISK_FORMATS = ("qcow2", "raw", "kernel")
UPLOAD_FORMATS = ("qcow2", "raw")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def visible(img: Any, who: Identity) -> bool:
    return img.visibility == "public" or img.owner == who.project_id or who.is_admin


def _common_checks(name_raw: str, min_disk_gb: int, min_ram_mb: int) -> tuple[str, list[tuple[str, str]]]:
    name, bad = validation.check_name(name_raw)
    if min_disk_gb < 0 or min_ram_mb < 0:
        bad.append(("min_disk_gb", "minimums must not be negative"))
    return name, bad


class ImageRpcs:
    cfg: DroverConfig
    policy: Policy
    sessions: sessionmaker[Session]
    db: GroupCommit  # every write goes through the service's group commit
    catalog: lookups.Catalog

    def _visible_image(self, s: Session, who: Identity, ref: str) -> m.Image:
        img = s.get(m.Image, ref)
        if img is None:
            img = s.execute(
                select(m.Image).where(m.Image.name == ref, m.Image.status == "active",
                                      or_(m.Image.visibility == "public", m.Image.owner == who.project_id))
                .order_by(m.Image.created_at)).scalars().first()
        if img is None or img.status != "active" or not visible(img, who):
            raise not_found("image", ref)
        return img

    @guarded
    async def CreateImage(
        self, request: api_pb2.CreateImageRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.CreateImageResponse:
        name, bad = _common_checks(request.name, request.min_disk_gb, request.min_ram_mb)
        if request.disk_format and request.disk_format not in DISK_FORMATS:
            bad.append(("disk_format", f"must be one of {', '.join(DISK_FORMATS)}"))
        if request.initrd_path and request.disk_format not in ("", "kernel"):
            bad.append(("initrd_path", "only a kernel image takes an initrd"))
        dirs = image_files.image_dirs(self.cfg)
        path = initrd = None
        for field, raw in (("path", request.path), ("initrd_path", request.initrd_path)):
            if field == "initrd_path" and not raw:
                continue
            try:
                resolved = await asyncio.to_thread(image_files.confine, raw, dirs, image_files.upload_dir(self.cfg))
            except image_files.ImageFileError as exc:
                bad.append((field, str(exc)))
                continue
            if field == "path":
                path = resolved
            else:
                initrd = resolved
        if bad:
            raise invalid_argument(bad)
        assert path is not None
        fmt = request.disk_format or ("kernel" if request.initrd_path else "")
        try:
            facts = await asyncio.to_thread(image_files.inspect, path, fmt)
        except (OSError, image_files.ImageFileError) as exc:
            raise invalid_argument([("path", str(exc))]) from None
        row = m.Image(
            id=str(uuid.uuid4()), name=name, status="active", disk_format=facts.disk_format, path=str(path),
            initrd_path=str(initrd) if initrd else "", size_bytes=facts.size_bytes,
            checksum_sha256=facts.checksum_sha256, min_disk_gb=request.min_disk_gb, min_ram_mb=request.min_ram_mb,
            properties=dict(request.properties), owner="", visibility="public",
        )
        await self.db.run(lambda s: s.add(row))
        self.catalog.clear()
        return api_pb2.CreateImageResponse(image=convert.image(row))

    @guarded
    async def UploadImage(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> api_pb2.UploadImageResponse:
        who = identity(context)
        messages = aiter(request_iterator)
        idle = self.cfg.api.upload_idle_timeout
        first = await _next(messages, idle)
        if first is UNPARSABLE or first is None or not first.HasField("metadata"):
            raise invalid_argument([("metadata", "the first message must carry the image's metadata")])
        meta = first.metadata
        name, bad = _common_checks(meta.name, meta.min_disk_gb, meta.min_ram_mb)
        bad += validation.check_bounds(meta, "metadata.")
        limit = self.cfg.api.max_image_upload_bytes
        if not 0 < meta.size_bytes <= limit:
            bad.append(("metadata.size_bytes", f"must be between 1 and {limit}"))
        if not _SHA256.fullmatch(meta.checksum_sha256):
            bad.append(("metadata.checksum_sha256", "must be 64 lowercase hex digits"))
        if meta.disk_format and meta.disk_format not in UPLOAD_FORMATS:
            bad.append(("metadata.disk_format", f"must be one of {', '.join(UPLOAD_FORMATS)}"))
        if bad:
            raise invalid_argument(bad)
        image_id = str(uuid.uuid4())
        folder = image_files.upload_dir(self.cfg)
        part = folder / f"{image_id}.part"
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        fh = await asyncio.to_thread(part.open, "xb")
        try:
            digest, size = hashlib.sha256(), 0

            def take(chunk: bytes) -> None:
                fh.write(chunk)
                digest.update(chunk)

            while (msg := await _next(messages, idle)) is not None:
                if msg is UNPARSABLE or not msg.HasField("chunk"):
                    raise invalid_argument([("chunk", "every message after the first carries bytes")])
                if len(msg.chunk) > validation.MAX_CHUNK_BYTES:
                    raise invalid_argument([("chunk", f"at most {validation.MAX_CHUNK_BYTES} bytes a message")])
                size += len(msg.chunk)
                if size > meta.size_bytes:
                    raise invalid_argument([("metadata.size_bytes", f"more bytes came than the {meta.size_bytes} "
                                                                    "announced")])
                await asyncio.to_thread(take, msg.chunk)
            await asyncio.to_thread(fh.close)
            if size != meta.size_bytes:
                raise invalid_argument([("metadata.size_bytes", f"announced {meta.size_bytes} bytes, got {size}")])
            if digest.hexdigest() != meta.checksum_sha256:
                raise invalid_argument([("metadata.checksum_sha256", "the bytes do not have this SHA-256")])
            try:
                facts = await asyncio.to_thread(image_files.inspect, part, meta.disk_format)
            except image_files.ImageFileError as exc:
                raise invalid_argument([("chunk", str(exc))]) from None
            final = folder / f"{image_id}.{facts.disk_format}"
            await asyncio.to_thread(os.replace, part, final)
        except BaseException:
            await asyncio.to_thread(_discard, fh, part)
            raise
        row = m.Image(
            id=image_id, name=name, status="active", disk_format=facts.disk_format, path=str(final), initrd_path="",
            size_bytes=size, checksum_sha256=facts.checksum_sha256, min_disk_gb=meta.min_disk_gb,
            min_ram_mb=meta.min_ram_mb, properties=dict(meta.properties), owner=who.project_id,
            visibility="private",
        )
        try:
            await self.db.run(lambda s: s.add(row))
        except BaseException:
            await asyncio.to_thread(final.unlink, missing_ok=True)
            raise
        self.catalog.clear()
        return api_pb2.UploadImageResponse(image=convert.image(row))

    @guarded
    async def ListImages(
        self, request: api_pb2.ListImagesRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.ListImagesResponse:
        who = identity(context)
        q = select(m.Image).where(m.Image.status == "active")
        if not who.is_admin:
            q = q.where(or_(m.Image.visibility == "public", m.Image.owner == who.project_id))
        with self.sessions() as s:
            rows = s.execute(q.order_by(m.Image.created_at)).scalars()
            return api_pb2.ListImagesResponse(images=[convert.image(i) for i in rows])

    @guarded
    async def GetImage(
        self, request: api_pb2.GetImageRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.GetImageResponse:
        with self.sessions() as s:
            return api_pb2.GetImageResponse(image=convert.image(self._visible_image(s, identity(context), request.id)))

    @guarded
    async def DeleteImage(
        self, request: api_pb2.DeleteImageRequest, context: grpc.aio.ServicerContext
    ) -> api_pb2.DeleteImageResponse:
        who = identity(context)

        def mark_deleted(s: Session) -> Path | None:
            img = self._visible_image(s, who, request.id)
            if img.owner != who.project_id:
                enforce(self.policy, who, "DeleteImage:any_owner")
            users = s.execute(select(m.Instance.id).where(
                m.Instance.image_id == img.id, m.Instance.deleted.is_(False),
                m.Instance.vm_state != states.DELETED).limit(3)).scalars().all()
            if users:
                raise failed_precondition(f"image {img.name} is in use by server(s) {', '.join(users)}",
                                          [("IMAGE_IN_USE", img.id, f"used by {len(users)}+ server(s)")])
            img.status = "deleted"
            return Path(img.path) if Path(img.path).parent == image_files.upload_dir(self.cfg) else None

        uploaded = await self.db.run(mark_deleted)
        self.catalog.clear()
        if uploaded is not None:  # drover's own copy; a registered host file stays where it was
            await asyncio.to_thread(uploaded.unlink, missing_ok=True)
        return api_pb2.DeleteImageResponse()


async def _next(messages: AsyncIterator[Any], idle: float) -> Any:
    """The next message of an upload, None at its end; DEADLINE_EXCEEDED after ``idle`` seconds
    without one."""
    try:
        return await asyncio.wait_for(anext(messages, None), timeout=idle)
    except TimeoutError:
        raise ApiError(grpc.StatusCode.DEADLINE_EXCEEDED,
                       f"the upload sent nothing for {idle:g} s; it was abandoned") from None


def _discard(fh: Any, part: Path) -> None:
    fh.close()
    part.unlink(missing_ok=True)
