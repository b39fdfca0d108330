"""drover's default bootable image (built by ``scripts/build-default-image.sh``).

A Debian cloud kernel plus a busybox-static initramfs, booted by direct kernel boot.
Its /init prints ``READY_MARKER`` on the serial console once userspace is up.
"""

from __future__ import annotations

import os
from pathlib import Path

from drover.agent.driver import ImageInfo

IMAGE_ID = "drover-default"
IMAGE_NAME = "drover-default (Debian cloud kernel + busybox initramfs)"
READY_MARKER = "DROVER-GUEST-READY"
# console=ttyS0: the kernel and /init write to the serial console (the console log).
# quiet: printk through an emulated UART is slow under TCG. The rest trims TCG boot time
# (~0.3 s of ~2.3 s): no crypto self-tests, and skip initcalls a tiny guest never needs
# (kprobe tracing, BTF sysfs, the KDF self-test, the PS/2 controller probe).
COMMAND_LINE = (
    "console=ttyS0 quiet panic=-1 mitigations=off tsc=reliable no_timer_check nokaslr cryptomgr.notests "
    "initcall_blacklist=init_kprobe_trace,btf_vmlinux_init,crypto_kdf108_init,i8042_init"
)
PROPERTIES: dict[str, str] = {
    "os_command_line": COMMAND_LINE,
    "ready_marker": READY_MARKER,
}
MIN_MEMORY_MB = 128  # the cloud kernel does not get to /init with 64 MiB
REPO_ROOT = Path(__file__).resolve().parents[3]  # drover/agent/libvirt/ → the repository


def build_dir() -> Path:
    """Where the build script puts the image (``DROVER_IMAGE_DIR`` overrides)."""
    return Path(os.environ.get("DROVER_IMAGE_DIR", REPO_ROOT / "images" / "build"))


def kernel_path(directory: Path | None = None) -> Path:
    return (directory or build_dir()) / "vmlinuz"


def initrd_path(directory: Path | None = None) -> Path:
    return (directory or build_dir()) / "initrd.img"


def is_built(directory: Path | None = None) -> bool:
    return kernel_path(directory).is_file() and initrd_path(directory).is_file()


def image_info(directory: Path | None = None, image_id: str = IMAGE_ID) -> ImageInfo:
    """The ImageInfo the compute driver gets for the default image."""
    return ImageInfo(
        id=image_id,
        path=str(kernel_path(directory)),
        disk_format="kernel",
        initrd_path=str(initrd_path(directory)),
        properties=dict(PROPERTIES),
    )
