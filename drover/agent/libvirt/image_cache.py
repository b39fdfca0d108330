"""Image cache keyed by image id, and per-instance disks (Nova's ``imagebackend``, trimmed).

Layout (Nova's ``_base`` directory, one sub-directory per image id)::

    <cache>/<image id>/base     qcow2 or raw image
    <cache>/<image id>/kernel   kernel images: the kernel ...
    <cache>/<image id>/initrd   ... and its initrd

Images are immutable once registered (as in Glance), so a cached file is never refreshed.
Files land atomically (tmp + rename), so a crash never leaves a half-written base.
All functions here block: call them from a worker thread.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import uuid
from pathlib import Path

from drover.agent.driver import DriverError, ImageInfo

GiB = 1024**3
_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def _src_path(p: str) -> Path:
    if p.startswith("file://"):
        p = p[len("file://") :]
    return Path(p)


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` (same file system) or copy it; atomic at ``dst``."""
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex}.tmp")
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def qemu_img(*args: str, timeout: float = 120.0) -> str:
    exe = shutil.which("qemu-img")
    if exe is None:
        raise DriverError("qemu-img is not installed (apt-get install qemu-utils)")
    try:
        res = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise DriverError(f"qemu-img {args[0]} timed out after {timeout:.0f}s") from e
    if res.returncode != 0:
        raise DriverError(f"qemu-img {' '.join(args)} failed: {res.stderr.strip() or res.stdout.strip()}")
    return res.stdout


def image_info(path: Path) -> dict:
    return json.loads(qemu_img("info", "--output=json", "-U", str(path)))


class ImageCache:
    """Local cache of images, one directory per image id."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._vsize: dict[str, int] = {}

    def _image_lock(self, image_id: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(image_id, threading.Lock())

    def _dir(self, image: ImageInfo) -> Path:
        if not _ID_RE.match(image.id):
            raise DriverError(f"image id {image.id!r} is not usable as a cache key")
        return self.path / image.id

    def _fetch_one(self, src_s: str, dst: Path, what: str, image: ImageInfo) -> Path:
        if dst.exists():
            return dst
        src = _src_path(src_s)
        if not src_s or not src.is_file():
            raise DriverError(f"image {image.id}: {what} {src_s!r} does not exist on this host")
        dst.parent.mkdir(parents=True, exist_ok=True)
        link_or_copy(src, dst)
        return dst

    def fetch_disk(self, image: ImageInfo) -> Path:
        """The cached base of a qcow2/raw image (fetched on first use)."""
        d = self._dir(image)
        with self._image_lock(image.id):
            base = self._fetch_one(image.path, d / "base", "file", image)
        return base

    def fetch_kernel(self, image: ImageInfo) -> tuple[Path, Path | None]:
        """The cached kernel (and initrd, if the image has one) of a kernel image."""
        d = self._dir(image)
        with self._image_lock(image.id):
            kernel = self._fetch_one(image.path, d / "kernel", "kernel", image)
            initrd = None
            if image.initrd_path:
                initrd = self._fetch_one(image.initrd_path, d / "initrd", "initrd", image)
        return kernel, initrd

    def virtual_size(self, image: ImageInfo, base: Path) -> int:
        """The virtual size in bytes of a cached base (qemu-img info, memoised)."""
        size = self._vsize.get(image.id)
        if size is None:
            info = image_info(base)
            fmt = info.get("format")
            if fmt and fmt != image.disk_format:
                raise DriverError(f"image {image.id} is registered as {image.disk_format} but its file is {fmt}")
            size = int(info["virtual-size"])
            self._vsize[image.id] = size
        return size

    def cached_ids(self) -> list[str]:
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if p.is_dir())

    def remove(self, image_id: str) -> None:
        with self._image_lock(image_id):
            shutil.rmtree(self.path / image_id, ignore_errors=True)
            self._vsize.pop(image_id, None)


def create_overlay(base: Path, base_fmt: str, dest: Path, size_bytes: int | None = None) -> None:
    """A qcow2 overlay on ``base`` (Nova's ``create_cow_image``), grown to ``size_bytes``."""
    args = ["create", "-q", "-f", "qcow2", "-F", base_fmt, "-b", str(base), str(dest)]
    if size_bytes:
        args.append(str(size_bytes))
    qemu_img(*args)


def create_blank(dest: Path, size_bytes: int) -> None:
    """A blank qcow2 disk (ephemeral or swap)."""
    qemu_img("create", "-q", "-f", "qcow2", str(dest), str(size_bytes))
