"""The boot benchmark's pure helpers (no libvirt, no mesh)."""

from __future__ import annotations

from benchmarks.boot import domain_facts, format_table, left_behind, progress, summarise_mesh
from drover.v1 import types_pb2 as t


def _server(**kw: object) -> t.Server:
    return t.Server(id="s1", **kw)  # type: ignore[arg-type]


def test_progress_follows_a_build_to_running() -> None:
    assert progress(_server(vm_state=t.VM_STATE_BUILDING, task_state=t.TASK_STATE_SCHEDULING)) == "pending"
    # a host is known while still scheduling: not placed yet (GetConsoleOutput would refuse)
    assert progress(_server(vm_state=t.VM_STATE_BUILDING, task_state=t.TASK_STATE_SCHEDULING, host="h")) == "pending"
    assert progress(_server(vm_state=t.VM_STATE_BUILDING, task_state=t.TASK_STATE_NETWORKING, host="h")) == "placed"
    assert progress(_server(vm_state=t.VM_STATE_BUILDING, task_state=t.TASK_STATE_SPAWNING, host="h")) == "spawning"
    active = _server(vm_state=t.VM_STATE_ACTIVE, status=t.SERVER_STATUS_ACTIVE, host="h")
    assert progress(active) == "placed"  # ACTIVE alone is not enough: the power state must be RUNNING
    active.power_state = t.POWER_STATE_RUNNING
    assert progress(active) == "running"
    assert progress(_server(vm_state=t.VM_STATE_ERROR, status=t.SERVER_STATUS_ERROR)) == "failed"
    assert progress(_server(vm_state=t.VM_STATE_DELETED, status=t.SERVER_STATUS_DELETED)) == "deleted"


def test_domain_facts() -> None:
    xml = """<domain type='qemu'><name>drover-x</name><memory unit='KiB'>524288</memory><vcpu>1</vcpu>
      <os><type>hvm</type><kernel>/k</kernel><cmdline>console=ttyS0 quiet</cmdline></os>
      <devices><interface type='user'><model type='virtio'/></interface></devices></domain>"""
    assert domain_facts(xml) == {"virt_type": "qemu", "memory_mb": 512, "vcpus": 1, "nic": "user",
                                 "cmdline": "console=ttyS0 quiet"}
    assert domain_facts("<domain type='kvm'><memory unit='MiB'>128</memory></domain>")["nic"] == "none"


def test_left_behind_only_counts_this_runs_guests() -> None:
    assert left_behind(["a", "b"], ["drover-c", "other-a", "fedora"], [], [], {"memory_mb_used": 0}) == {}
    assert left_behind(["a"], ["drover-a", "drover-c"], ["a"], ["a"], {"memory_mb_used": 512, "vcpus_used": 0}) == {
        "domains": ["drover-a"], "instance_dirs": ["a"], "servers": ["a"], "claims": {"memory_mb_used": 512}}


def test_summarise_mesh_and_table() -> None:
    recs = [
        {"accept_s": 0.01, "running_s": 0.5, "ready_s": 2.0, "delete_s": 0.3, "stream_s": {"spawning": 0.2}},
        {"accept_s": 0.02, "running_s": 0.7, "ready_s": 2.4, "delete_s": 0.4, "stream_s": {"spawning": 0.3}},
        {"accept_s": 0.02, "error": "failed: VM_STATE_ERROR boom", "delete_s": 0.2, "stream_s": {}},
    ]
    res = summarise_mesh(recs, [2.5])
    assert (res["guests"], res["failed"], res["errors"]) == (3, 1, ["failed: VM_STATE_ERROR boom"])
    assert res["accept_s"]["n"] == 3 and res["delete_s"]["n"] == 3
    assert res["create_to_running_s"]["n"] == 2 and res["create_to_running_s"]["p50"] == 0.5
    assert res["create_to_ready_s"]["p95"] == 2.4
    assert res["stream_s"]["spawning"]["n"] == 2
    table = format_table(res).splitlines()
    assert table[0].split() == ["figure", "(s)", "n", "p50", "p95", "min", "max"]
    labels = [line[:24].strip() for line in table[1:]]
    assert labels == ["CreateServer (accept)", "create -> RUNNING", "create -> guest ready", "delete -> DELETED",
                      "round wall"]
    assert format_table({"create_to_running_s": {"n": 0}}).splitlines()[1].split()[-5:] == ["0", "-", "-", "-", "-"]
