"""drover's real compute driver: libvirt/QEMU (Nova's ``nova.virt.libvirt``, trimmed).

``LibvirtDriver`` needs libvirt-python (``pip install libvirt-python``, see
``scripts/setup-libvirt.sh``); the XML and image-cache modules do not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["LibvirtDriver"]

if TYPE_CHECKING:  # pragma: no cover
    from drover.agent.libvirt.driver import LibvirtDriver


def __getattr__(name: str) -> Any:
    if name == "LibvirtDriver":
        from drover.agent.libvirt.driver import LibvirtDriver

        return LibvirtDriver
    raise AttributeError(name)
