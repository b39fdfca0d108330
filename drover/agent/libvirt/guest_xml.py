"""Libvirt domain XML for one drover guest (Nova's ``LibvirtConfigGuest``, trimmed).

Pure functions over plain data: no libvirt import, so it is testable anywhere.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field

from drover.agent.driver import GuestSpec

DOMAIN_PREFIX = "drover-"
METADATA_NS = "https://drover.dev/xmlns/libvirt/instance/1.0"
DEFAULT_CMDLINE = "console=ttyS0"
VIRT_TYPES = ("qemu", "kvm", "test")
NIC_MODES = ("none", "user")


def domain_name(instance_id: str) -> str:
    return f"{DOMAIN_PREFIX}{instance_id}"


def instance_id_from_domain(name: str) -> str | None:
    return name[len(DOMAIN_PREFIX) :] if name.startswith(DOMAIN_PREFIX) else None


@dataclass(frozen=True)
class DiskConfig:
    path: str
    fmt: str = "qcow2"  # the format of ``path`` itself (overlays are qcow2)
    target: str = "vda"
    bus: str = "virtio"
    device: str = "disk"


@dataclass(frozen=True)
class GuestConfig:
    """Everything the XML needs that is not in the GuestSpec itself."""

    virt_type: str  # qemu (TCG) | kvm
    console_path: str
    disks: tuple[DiskConfig, ...] = ()
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    nic: str = "none"  # none | user
    nic_model: str = "virtio"
    arch: str = "x86_64"
    machine: str | None = None
    extra_metadata: Mapping[str, str] = field(default_factory=dict)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k.rstrip("_"): v for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def build_domain_xml(guest: GuestSpec, cfg: GuestConfig) -> str:
    """Render the domain XML of ``guest``."""
    if cfg.virt_type not in VIRT_TYPES:
        raise ValueError(f"unknown virt type {cfg.virt_type!r}")
    if cfg.nic not in NIC_MODES:
        raise ValueError(f"unknown NIC mode {cfg.nic!r}")
    if cfg.kernel is None and not cfg.disks:
        raise ValueError("a guest needs a kernel (direct kernel boot) or a root disk")
    if guest.vcpus < 1 or guest.memory_mb < 1:
        raise ValueError("vcpus and memory_mb must be positive")

    dom = ET.Element("domain", {"type": cfg.virt_type})
    _sub(dom, "name", domain_name(guest.instance_id))
    _sub(dom, "uuid", guest.instance_id)
    _sub(dom, "title", guest.name[:255] if guest.name else domain_name(guest.instance_id))

    md = _sub(dom, "metadata")
    ET.register_namespace("drover", METADATA_NS)
    q = f"{{{METADATA_NS}}}"
    inst = ET.SubElement(md, f"{q}instance")
    ET.SubElement(inst, f"{q}name").text = guest.name
    ET.SubElement(inst, f"{q}host").text = guest.host
    ET.SubElement(inst, f"{q}image", {"id": guest.image.id, "disk_format": guest.image.disk_format})
    ET.SubElement(
        inst,
        f"{q}flavor",
        {
            "vcpus": str(guest.vcpus),
            "memory_mb": str(guest.memory_mb),
            "root_gb": str(guest.root_gb),
            "ephemeral_gb": str(guest.ephemeral_gb),
            "swap_mb": str(guest.swap_mb),
        },
    )
    for key, value in {**dict(guest.metadata), **dict(cfg.extra_metadata)}.items():
        ET.SubElement(inst, f"{q}meta", {"key": str(key)}).text = str(value)

    _sub(dom, "memory", str(guest.memory_mb), unit="MiB")
    _sub(dom, "currentMemory", str(guest.memory_mb), unit="MiB")
    _sub(dom, "vcpu", str(guest.vcpus), placement="static")

    os_el = _sub(dom, "os")
    type_attrs = {"arch": cfg.arch}
    if cfg.machine:
        type_attrs["machine"] = cfg.machine
    _sub(os_el, "type", "hvm", **type_attrs)
    if cfg.kernel is not None:
        _sub(os_el, "kernel", cfg.kernel)
        if cfg.initrd:
            _sub(os_el, "initrd", cfg.initrd)
        _sub(os_el, "cmdline", cfg.cmdline if cfg.cmdline is not None else DEFAULT_CMDLINE)
    else:
        _sub(os_el, "boot", dev="hd")

    features = _sub(dom, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    if cfg.virt_type == "kvm":
        _sub(dom, "cpu", mode="host-passthrough", check="none", migratable="on")
    _sub(dom, "clock", offset="utc")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")

    dev = _sub(dom, "devices")
    for disk in cfg.disks:
        d = _sub(dev, "disk", type="file", device=disk.device)
        _sub(d, "driver", name="qemu", type=disk.fmt, cache="none" if cfg.virt_type == "kvm" else "writeback")
        _sub(d, "source", file=disk.path)
        _sub(d, "target", dev=disk.target, bus=disk.bus)
    if cfg.nic == "user":
        iface = _sub(dev, "interface", type="user")
        _sub(iface, "model", type=cfg.nic_model)
        _sub(iface, "rom", enabled="no")
    serial = _sub(dev, "serial", type="file")
    _sub(serial, "source", path=cfg.console_path, append="off")
    _sub(serial, "target", port="0")
    _sub(dev, "memballoon", model="none")

    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode")
