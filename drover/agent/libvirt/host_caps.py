"""What Nova's libvirt driver reports about a host, read from libvirt's capabilities XML.

* ``cpu_info``: Nova's ``LibvirtDriver._get_cpu_info`` (arch, model, vendor, topology,
  maxphysaddr, features), serialised as JSON the way ``ComputeNode.cpu_info`` holds it;
* ``supported_instances``: ``_get_instance_capabilities``, one (arch, hypervisor type, vm mode)
  triple per guest arch and domain type;
* CPU traits: ``nova.virt.libvirt.utils.cpu_features_to_traits`` with its ``CPU_TRAITS_MAPPING``
  (os-traits names), for the host CPU's features.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

# libvirt CPU feature name -> os-traits trait names (Nova's CPU_TRAITS_MAPPING)
CPU_TRAITS_MAPPING: dict[str, tuple[str, ...]] = {
    "3dnow": ("HW_CPU_X86_3DNOW",),
    "abm": ("HW_CPU_X86_ABM",),
    "aes": ("HW_CPU_X86_AESNI",),
    "amx-bf16": ("HW_CPU_X86_AMXBF16",),
    "amx-int8": ("HW_CPU_X86_AMXINT8",),
    "amx-tile": ("HW_CPU_X86_AMXTILE",),
    "avx": ("HW_CPU_X86_AVX",),
    "avx2": ("HW_CPU_X86_AVX2",),
    "avx512bw": ("HW_CPU_X86_AVX512BW",),
    "avx512cd": ("HW_CPU_X86_AVX512CD",),
    "avx512dq": ("HW_CPU_X86_AVX512DQ",),
    "avx512er": ("HW_CPU_X86_AVX512ER",),
    "avx512f": ("HW_CPU_X86_AVX512F",),
    "avx512pf": ("HW_CPU_X86_AVX512PF",),
    "avx512vl": ("HW_CPU_X86_AVX512VL",),
    "avx512vnni": ("HW_CPU_X86_AVX512VNNI",),
    "avx512vbmi": ("HW_CPU_X86_AVX512VBMI",),
    "avx512ifma": ("HW_CPU_X86_AVX512IFMA",),
    "avx512vbmi2": ("HW_CPU_X86_AVX512VBMI2",),
    "avx512bitalg": ("HW_CPU_X86_AVX512BITALG",),
    "vaes": ("HW_CPU_X86_AVX512VAES",),
    "gfni": ("HW_CPU_X86_AVX512GFNI",),
    "vpclmulqdq": ("HW_CPU_X86_AVX512VPCLMULQDQ",),
    "avx512-vpopcntdq": ("HW_CPU_X86_AVX512VPOPCNTDQ",),
    "bmi1": ("HW_CPU_X86_BMI",),
    "bmi2": ("HW_CPU_X86_BMI2",),
    "pclmuldq": ("HW_CPU_X86_CLMUL",),
    "f16c": ("HW_CPU_X86_F16C",),
    "fma": ("HW_CPU_X86_FMA3",),
    "fma4": ("HW_CPU_X86_FMA4",),
    "mmx": ("HW_CPU_X86_MMX",),
    "mpx": ("HW_CPU_X86_MPX",),
    "sha-ni": ("HW_CPU_X86_SHA",),
    "sse": ("HW_CPU_X86_SSE",),
    "sse2": ("HW_CPU_X86_SSE2",),
    "sse3": ("HW_CPU_X86_SSE3",),
    "sse4.1": ("HW_CPU_X86_SSE41",),
    "sse4.2": ("HW_CPU_X86_SSE42",),
    "sse4a": ("HW_CPU_X86_SSE4A",),
    "ssse3": ("HW_CPU_X86_SSSE3",),
    # the generic and the vendor-specific trait, as Nova keeps both
    "svm": ("HW_CPU_X86_SVM", "HW_CPU_X86_AMD_SVM"),
    "tbm": ("HW_CPU_X86_TBM",),
    "vmx": ("HW_CPU_X86_VMX", "HW_CPU_X86_INTEL_VMX"),
    "xop": ("HW_CPU_X86_XOP",),
}

# nova.objects.fields canonical names for what libvirt calls them
_ARCH_ALIASES = {"i386": "i686", "i486": "i686", "i586": "i686", "amd64": "x86_64", "arm64": "aarch64"}
_VM_MODES = {"hvm": "hvm", "xen": "xen", "linux": "uml", "exe": "exe", "uml": "uml"}


@dataclass
class HostCapabilities:
    cpu_info: dict[str, Any] = field(default_factory=dict)
    supported_instances: list[tuple[str, str, str]] = field(default_factory=list)
    traits: list[str] = field(default_factory=list)

    def cpu_info_json(self) -> str:
        return json.dumps(self.cpu_info, sort_keys=True)


def cpu_features_to_traits(features: set[str]) -> list[str]:
    """The traits a host with these CPU features has (sorted)."""
    return sorted(t for feature, traits in CPU_TRAITS_MAPPING.items() if feature in features for t in traits)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def parse(capabilities_xml: str) -> HostCapabilities:
    """Read ``virConnect.getCapabilities()``; an element libvirt leaves out is left out."""
    root = ET.fromstring(capabilities_xml)
    caps = HostCapabilities()
    cpu = root.find("host/cpu")
    if cpu is not None:
        info: dict[str, Any] = {
            "arch": cpu.findtext("arch"),
            "model": cpu.findtext("model"),
            "vendor": cpu.findtext("vendor"),
        }
        topo = cpu.find("topology")
        cells = root.findall("host/topology/cells/cell")
        info["topology"] = {
            "cells": len(cells) or 1,
            "sockets": _int(topo.get("sockets")) if topo is not None else None,
            "cores": _int(topo.get("cores")) if topo is not None else None,
            "threads": _int(topo.get("threads")) if topo is not None else None,
        }
        maxphysaddr = cpu.find("maxphysaddr")
        if maxphysaddr is not None:
            info["maxphysaddr"] = {"mode": maxphysaddr.get("mode"), "bits": _int(maxphysaddr.get("bits"))}
        features = {f.get("name", "") for f in cpu.findall("feature")} - {""}
        info["features"] = sorted(features)
        caps.cpu_info = info
        caps.traits = cpu_features_to_traits(features)
    for guest in root.findall("guest"):
        os_type = (guest.findtext("os_type") or "").strip().lower()
        arch_el = guest.find("arch")
        if arch_el is None:
            continue
        arch = arch_el.get("name", "").strip().lower()
        arch = _ARCH_ALIASES.get(arch, arch)
        vm_mode = _VM_MODES.get(os_type, os_type)
        for domain in arch_el.findall("domain"):
            hv_type = domain.get("type", "").strip().lower()
            triple = (arch, "xen" if hv_type == "xapi" else hv_type, vm_mode)
            if triple not in caps.supported_instances:
                caps.supported_instances.append(triple)
    return caps
