"""The `drover` command against a running mesh, as a user types it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def run(mesh):
    # As after `drover up` here: no token given, the CLI finds the admin token in the data dir.
    env = {**os.environ, "DROVER_URL": mesh.addresses["api"], "DROVER_DATA_DIR": str(mesh.data_dir),
           "COLUMNS": "200"}
    env.pop("DROVER_TOKEN", None)

    def _run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "drover", *args], env=env, capture_output=True, text=True,
                              timeout=120)
        if ok:
            assert proc.returncode == 0, proc.stderr
        return proc

    return _run


def test_server_lifecycle_through_the_cli(run, image_file) -> None:
    img = json.loads(run("image", "create", "cli-image", "--file", str(image_file), "-f", "json").stdout)
    assert img["name"] == "cli-image" and img["disk_format"] == "raw"

    server = json.loads(run("server", "create", "demo", "--flavor", "m1.tiny", "--image", "cli-image",
                            "--wait", "-f", "json").stdout)
    assert server["status"] == "SERVER_STATUS_ACTIVE"
    assert server["power_state"] == "POWER_STATE_RUNNING"

    listed = json.loads(run("server", "list", "--name", "^demo$", "-f", "json").stdout)
    assert [s["id"] for s in listed] == [server["id"]]
    table = run("server", "list", "--name", "^demo$").stdout
    assert "demo" in table and "ACTIVE" in table

    shown = run("server", "show", "demo").stdout
    assert server["id"] in shown and "ACTIVE" in shown

    events = json.loads(run("server", "event", "list", "demo", "-f", "json").stdout)
    assert [a["action"] for a in events] == ["create"]
    assert {e["event"] for e in events[0]["events"]} == {
        "conductor_schedule_and_build_instances", "compute_build_and_run_instance", "compute_spawn"}
    assert "compute_spawn" in run("server", "event", "list", "demo").stdout

    assert "fake console" in run("server", "console-log", "demo").stdout
    console = json.loads(run("server", "console-log", "demo", "-f", "json").stdout)
    assert console["id"] == server["id"] and "fake console" in console["output"]

    deleted = json.loads(run("server", "delete", "demo", "--wait", "-f", "json").stdout)
    assert [(d["id"], d["status"]) for d in deleted] == [(server["id"], "SERVER_STATUS_DELETED")]
    assert json.loads(run("server", "list", "--name", "^demo$", "-f", "json").stdout) == []


def test_catalog_commands(run) -> None:
    flavors = json.loads(run("flavor", "list", "-f", "json").stdout)
    assert [f["name"] for f in flavors][:5] == ["m1.tiny", "m1.small", "m1.medium", "m1.large", "m1.xlarge"]
    assert "m1.tiny" in run("flavor", "list").stdout
    nets = json.loads(run("network", "list", "-f", "json").stdout)
    assert nets[0]["name"] == "private"
    hosts = json.loads(run("host", "list", "-f", "json").stdout)
    assert len(hosts) == 4 and all(h["up"] for h in hosts)
    # what the fake agent reports besides its numbers reaches the scheduler's view (Nova's fake driver)
    assert all(h["supported_instances"] == [{"arch": "x86_64", "hypervisor_type": "fake", "vm_mode": "hvm"}]
               for h in hosts)
    assert all(h["hypervisor_version"] == "1000" for h in hosts)


def test_server_group_with_max_server_per_host(run) -> None:
    group = json.loads(run("server", "group", "create", "pairs", "--policy", "anti-affinity",
                           "--max-server-per-host", "2", "-f", "json").stdout)
    assert (group["policy"], group["max_server_per_host"]) == ("anti-affinity", 2)
    assert "max_server_per_host" in run("server", "group", "show", group["id"]).stdout
    proc = run("server", "group", "create", "bad", "--policy", "affinity", "--max-server-per-host", "2", ok=False)
    assert proc.returncode != 0 and "INVALID_ARGUMENT" in proc.stderr and "max_server_per_host" in proc.stderr


def test_errors_are_one_clear_line_and_nonzero(run) -> None:
    proc = run("server", "create", "   ", "--flavor", "m1.tiny", "--image", "cli-image", ok=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "INVALID_ARGUMENT" in proc.stderr and "name" in proc.stderr
    assert "Traceback" not in proc.stderr

    proc = run("server", "create", "x", "--flavor", "nope", "--image", "cli-image", ok=False)
    assert proc.returncode != 0 and "NOT_FOUND" in proc.stderr and "flavor" in proc.stderr

    proc = run("server", "show", "no-such-server", ok=False)
    assert proc.returncode != 0 and "no-such-server" in proc.stderr


def test_unreachable_api_says_so(tmp_path) -> None:
    env = {**os.environ, "DROVER_URL": "127.0.0.1:1"}
    proc = subprocess.run([sys.executable, "-m", "drover", "flavor", "list"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0
    assert "drover up" in proc.stderr and "Traceback" not in proc.stderr


def test_tokens_an_operator_issues_act_as_their_project_and_role(run, mesh, tmp_path) -> None:
    member = run("token", "create", "--project", "cli-p", "--user", "alice", "--roles", "member",
                 "--data-dir", str(mesh.data_dir)).stdout.strip()
    reader = json.loads(run("token", "create", "--project", "cli-p", "--user", "bob", "--roles", "reader",
                            "--ttl", "60", "--data-dir", str(mesh.data_dir), "-f", "json").stdout)
    assert reader["roles"] == ["reader"] and reader["project"] == "cli-p"

    # --token wins over the admin token file: a member may not list hosts.
    proc = run("--token", member, "host", "list", ok=False)
    assert proc.returncode != 0 and "PERMISSION_DENIED" in proc.stderr
    # DROVER_TOKEN is used when there is no --token (here, with no data dir to fall back on).
    env = {**os.environ, "DROVER_URL": mesh.addresses["api"], "DROVER_DATA_DIR": str(tmp_path),
           "DROVER_TOKEN": member}
    proc = subprocess.run([sys.executable, "-m", "drover", "server", "list", "-f", "json"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and json.loads(proc.stdout) == [], proc.stderr

    proc = run("token", "create", "--project", "p", "--user", "u", "--roles", "superuser",
               "--data-dir", str(mesh.data_dir), ok=False)
    assert proc.returncode != 0 and "unknown role" in proc.stderr
    proc = run("token", "create", "--project", "p", "--user", "u", "--data-dir", str(tmp_path), ok=False)
    assert proc.returncode != 0 and "no signing key" in proc.stderr


def test_without_a_token_the_cli_says_how_to_get_one(mesh, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DROVER_TOKEN"}
    env.update(DROVER_URL=mesh.addresses["api"], DROVER_DATA_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "drover", "flavor", "list"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0 and "UNAUTHENTICATED" in proc.stderr and "--token" in proc.stderr
    assert "Traceback" not in proc.stderr
