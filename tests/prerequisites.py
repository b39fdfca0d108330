"""The one way a test meets a missing prerequisite (libvirt/QEMU, PostgreSQL): it skips where that
part is optional, and fails where the run requires it (DROVER_REQUIRE_LIBVIRT=1 or
DROVER_REQUIRE_POSTGRES=1, which scripts/test.sh sets). Its skips carry SKIP_PREFIX, which the
skip check in tests/conftest.py accepts only while the matching variable is unset."""

from __future__ import annotations

import os
import shutil
from types import ModuleType
from typing import NoReturn

import pytest

REQUIRED_BY = {"libvirt": "DROVER_REQUIRE_LIBVIRT", "postgres": "DROVER_REQUIRE_POSTGRES"}
SKIP_PREFIX = "prerequisite missing"


def required(kind: str) -> bool:
    return os.environ.get(REQUIRED_BY[kind]) == "1"


def missing(kind: str, reason: str) -> NoReturn:
    if required(kind):
        pytest.fail(f"{reason} ({REQUIRED_BY[kind]}=1)", pytrace=False)
    pytest.skip(f"{SKIP_PREFIX} ({kind}): {reason}")


def libvirt_module() -> ModuleType:
    """libvirt-python, imported."""
    try:
        import libvirt
    except ImportError:
        missing("libvirt", "libvirt-python is not installed (scripts/setup-libvirt.sh)")
    if not hasattr(libvirt, "virConnect"):  # tests/libvirt seen as a namespace package
        missing("libvirt", "libvirt-python is not installed (scripts/setup-libvirt.sh)")
    return libvirt


def tool(name: str, kind: str = "libvirt") -> str:
    """The path of a command-line tool the `kind` setup installs (qemu-img: libvirt/QEMU)."""
    path = shutil.which(name)
    if path is None:
        missing(kind, f"{name} is not installed (scripts/setup.sh)")
    return path
