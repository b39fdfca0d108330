"""Image files on the API host: where an admin may register them from, what they are, and where
uploads are kept. Everything here touches the disk: callers run it in a thread."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from drover.agent.libvirt import default_image
from drover.config import DroverConfig

QCOW2_MAGIC = b"QFI\xfb"


class ImageFileError(ValueError):
    """The file cannot be an image (outside the image dirs, not a regular file, a backing file …)."""


def image_dirs(cfg: DroverConfig) -> list[Path]:
    raw = cfg.api.image_dirs or [str(cfg.data_path / "images"), str(default_image.build_dir())]
    return [Path(d).expanduser().resolve() for d in raw]


def upload_dir(cfg: DroverConfig) -> Path:
    return cfg.data_path / "images" / "uploads"


def confine(raw: str, dirs: list[Path], uploads: Path) -> Path:
    """The real path of ``raw`` if it is a regular file inside one of ``dirs`` (symlinks resolved
    first, so a link pointing out, ``..`` or /proc are all outside) and not one of the uploaded
    images kept in ``uploads`` (a project's private file, which deleting its image removes)."""
    if not raw or "\0" in raw:
        raise ImageFileError("is required")
    path = Path(os.path.realpath(Path(raw).expanduser()))
    if not any(path.is_relative_to(d) for d in dirs):
        raise ImageFileError(f"{raw} is not inside an image directory ({', '.join(map(str, dirs))})")
    if path.is_relative_to(os.path.realpath(uploads)):
        raise ImageFileError(f"{raw} is an uploaded image's file, not one to register")
    try:
        st = os.stat(path)
    except OSError:
        raise ImageFileError(f"{raw} is not a readable file") from None
    if not stat.S_ISREG(st.st_mode):
        raise ImageFileError(f"{raw} is not a regular file")
    return path


@dataclass(frozen=True)
class FileFacts:
    disk_format: str
    size_bytes: int
    checksum_sha256: str


def _qcow2_backing_offset(header: bytes) -> int:
    return int.from_bytes(header[8:16], "big") if header[:4] == QCOW2_MAGIC and len(header) >= 16 else 0


def inspect(path: Path, disk_format: str) -> FileFacts:
    """Size, SHA-256 and format of a confined file (read through one descriptor, not re-resolved)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise ImageFileError(f"{path} is not a regular file")
        head = fh.read(16)
        if _qcow2_backing_offset(head):
            raise ImageFileError("a qcow2 image with a backing file is refused")
        h = hashlib.sha256(head)
        size = len(head)
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    # qcow2 or raw by the magic number: other formats (vmdk descriptors …) can name host files.
    fmt = disk_format or ("qcow2" if head[:4] == QCOW2_MAGIC else "raw")
    if fmt == "qcow2" and head[:4] != QCOW2_MAGIC:
        raise ImageFileError("is not a qcow2 image")
    return FileFacts(disk_format=fmt, size_bytes=size, checksum_sha256=h.hexdigest())
