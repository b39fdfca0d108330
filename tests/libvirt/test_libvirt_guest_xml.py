"""Domain XML generation: pure, needs no libvirt."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from drover.agent.driver import GuestSpec, ImageInfo
from drover.agent.libvirt.guest_xml import (
    METADATA_NS,
    DiskConfig,
    GuestConfig,
    build_domain_xml,
    domain_name,
    instance_id_from_domain,
)

IID = "6f1c1bde-5a8e-4e2b-9a57-3b0c6f2f4a10"
KERNEL = ImageInfo("img-k", "/img/vmlinuz", "kernel", "/img/initrd", {"os_command_line": "console=ttyS0 quiet"})
QCOW = ImageInfo("img-q", "/img/disk.qcow2", "qcow2")


def guest(image=KERNEL, **kw) -> GuestSpec:
    base = dict(instance_id=IID, name="web-1", host="h1", vcpus=2, memory_mb=256, root_gb=1, image=image)
    base.update(kw)
    return GuestSpec(**base)


def kernel_cfg(**kw) -> GuestConfig:
    base = dict(
        virt_type="qemu",
        console_path=f"/inst/{IID}/console.log",
        kernel=f"/inst/{IID}/kernel",
        initrd=f"/inst/{IID}/initrd",
        cmdline="console=ttyS0 quiet",
    )
    base.update(kw)
    return GuestConfig(**base)


def parse(xml: str) -> ET.Element:
    return ET.fromstring(xml)


def test_names_round_trip():
    assert domain_name(IID) == f"drover-{IID}"
    assert instance_id_from_domain(f"drover-{IID}") == IID
    assert instance_id_from_domain("test") is None


def test_direct_kernel_boot_tcg():
    dom = parse(build_domain_xml(guest(), kernel_cfg()))
    assert dom.get("type") == "qemu"
    assert dom.findtext("name") == f"drover-{IID}"
    assert dom.findtext("uuid") == IID
    assert dom.find("memory").get("unit") == "MiB" and dom.findtext("memory") == "256"
    assert dom.findtext("vcpu") == "2"
    os_el = dom.find("os")
    assert os_el.findtext("type") == "hvm"
    assert os_el.findtext("kernel") == f"/inst/{IID}/kernel"
    assert os_el.findtext("initrd") == f"/inst/{IID}/initrd"
    assert os_el.findtext("cmdline") == "console=ttyS0 quiet"
    assert os_el.find("boot") is None
    assert dom.find("cpu") is None  # TCG: QEMU's default CPU model
    serial = dom.find("devices/serial")
    assert serial.get("type") == "file"
    assert serial.find("source").get("path") == f"/inst/{IID}/console.log"
    assert dom.find("devices/disk") is None
    assert dom.find("devices/interface") is None
    assert dom.find("features/acpi") is not None


def test_default_cmdline():
    dom = parse(build_domain_xml(guest(), kernel_cfg(cmdline=None)))
    assert dom.findtext("os/cmdline") == "console=ttyS0"


def test_kvm_gets_host_cpu():
    dom = parse(build_domain_xml(guest(), kernel_cfg(virt_type="kvm")))
    assert dom.get("type") == "kvm"
    assert dom.find("cpu").get("mode") == "host-passthrough"


def test_disk_boot_with_ephemeral_swap_and_user_nic():
    cfg = GuestConfig(
        virt_type="qemu",
        console_path="/c.log",
        disks=(
            DiskConfig("/inst/disk", "qcow2", "vda"),
            DiskConfig("/inst/disk.eph0", "qcow2", "vdb"),
            DiskConfig("/inst/disk.swap", "qcow2", "vdc"),
        ),
        nic="user",
        machine="pc",
    )
    dom = parse(build_domain_xml(guest(QCOW, ephemeral_gb=1, swap_mb=64), cfg))
    assert dom.find("os/kernel") is None
    assert dom.find("os/boot").get("dev") == "hd"
    assert dom.find("os/type").get("machine") == "pc"
    disks = dom.findall("devices/disk")
    assert [d.find("target").get("dev") for d in disks] == ["vda", "vdb", "vdc"]
    assert disks[0].find("source").get("file") == "/inst/disk"
    assert disks[0].find("driver").get("type") == "qcow2"
    assert disks[0].find("target").get("bus") == "virtio"
    iface = dom.find("devices/interface")
    assert iface.get("type") == "user"
    assert iface.find("model").get("type") == "virtio"


def test_metadata_records_flavor_and_image():
    dom = parse(build_domain_xml(guest(metadata={"owner": "alice"}), kernel_cfg()))
    q = f"{{{METADATA_NS}}}"
    inst = dom.find(f"metadata/{q}instance")
    assert inst.findtext(f"{q}name") == "web-1"
    assert inst.find(f"{q}image").get("id") == "img-k"
    assert inst.find(f"{q}flavor").get("memory_mb") == "256"
    assert inst.find(f"{q}meta").get("key") == "owner"
    assert inst.find(f"{q}meta").text == "alice"


def test_special_characters_are_escaped():
    dom = parse(build_domain_xml(guest(name="<b>&'\""), kernel_cfg(cmdline="a=<x> & y")))
    assert dom.findtext("title") == "<b>&'\""
    assert dom.findtext("os/cmdline") == "a=<x> & y"


@pytest.mark.parametrize(
    "cfg,spec",
    [
        (dict(virt_type="xen"), {}),
        (dict(nic="bridge"), {}),
        (dict(kernel=None), {}),
        ({}, dict(vcpus=0)),
    ],
)
def test_rejects_bad_input(cfg, spec):
    with pytest.raises(ValueError):
        build_domain_xml(guest(**spec), kernel_cfg(**cfg))
