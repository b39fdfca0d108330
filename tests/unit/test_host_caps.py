"""The libvirt agent's reading of capabilities XML: Nova's cpu_info, supported_instances, CPU traits."""

from __future__ import annotations

import json

from drover.agent.libvirt import host_caps

CAPS = """
<capabilities>
  <host>
    <cpu>
      <arch>x86_64</arch>
      <model>EPYC-Milan</model>
      <vendor>AMD</vendor>
      <topology sockets='2' dies='1' cores='8' threads='2'/>
      <maxphysaddr mode='emulate' bits='48'/>
      <feature name='avx2'/>
      <feature name='svm'/>
      <feature name='vaes'/>
      <feature name='x2apic'/>
    </cpu>
    <topology><cells num='2'><cell id='0'/><cell id='1'/></cells></topology>
  </host>
  <guest>
    <os_type>hvm</os_type>
    <arch name='x86_64'><domain type='qemu'/><domain type='kvm'/></arch>
  </guest>
  <guest>
    <os_type>hvm</os_type>
    <arch name='i686'><domain type='qemu'/></arch>
  </guest>
</capabilities>
"""


def test_cpu_info_is_novas_shape() -> None:
    caps = host_caps.parse(CAPS)
    assert json.loads(caps.cpu_info_json()) == {
        "arch": "x86_64",
        "model": "EPYC-Milan",
        "vendor": "AMD",
        "topology": {"cells": 2, "sockets": 2, "cores": 8, "threads": 2},
        "maxphysaddr": {"mode": "emulate", "bits": 48},
        "features": ["avx2", "svm", "vaes", "x2apic"],
    }


def test_supported_instances_one_per_guest_arch_and_domain_type() -> None:
    assert host_caps.parse(CAPS).supported_instances == [
        ("x86_64", "qemu", "hvm"),
        ("x86_64", "kvm", "hvm"),
        ("i686", "qemu", "hvm"),
    ]


def test_cpu_features_become_os_traits_names_as_nova_maps_them() -> None:
    # svm keeps the generic and the AMD trait; vaes is Nova's AVX512VAES; x2apic has no trait
    assert host_caps.parse(CAPS).traits == [
        "HW_CPU_X86_AMD_SVM",
        "HW_CPU_X86_AVX2",
        "HW_CPU_X86_AVX512VAES",
        "HW_CPU_X86_SVM",
    ]


def test_a_host_without_cpu_or_guests_reports_nothing() -> None:
    caps = host_caps.parse("<capabilities><host/></capabilities>")
    assert (caps.cpu_info, caps.supported_instances, caps.traits) == ({}, [], [])
