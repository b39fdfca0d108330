"""An operator's policy file changes what the API allows, and `drover policy list` shows it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import grpc
import pytest

from drover.localmesh import LocalMesh
from drover.v1 import api_pb2, api_pb2_grpc


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text("ListHosts: project_reader\nCreateServerGroup: admin\n")
    return path


@pytest.fixture(scope="module")
def policy_mesh(policy_file, tmp_path_factory):
    mesh = LocalMesh.on_free_ports(tmp_path_factory.mktemp("policy-mesh"), AUTH__POLICY_FILE=str(policy_file))
    mesh.start()
    yield mesh
    mesh.stop()


def test_overridden_rules_are_what_the_api_enforces(policy_mesh) -> None:
    with policy_mesh.api_channel(policy_mesh.issue_token("p", "u", ["reader"])) as chan:
        reader = api_pb2_grpc.ApiServiceStub(chan)
        reader.ListHosts(api_pb2.ListHostsRequest(), timeout=10)  # now a reader's
    with policy_mesh.api_channel(policy_mesh.issue_token("p", "u", ["member"])) as chan:
        with pytest.raises(grpc.RpcError) as err:
            api_pb2_grpc.ApiServiceStub(chan).CreateServerGroup(
                api_pb2.CreateServerGroupRequest(name="g", policy="affinity"), timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def _policy_list(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DROVER_")}, **env_extra}
    return subprocess.run([sys.executable, "-m", "drover", "policy", "list", "-f", "json"], env=env,
                          capture_output=True, text=True, timeout=60)


def test_policy_list_shows_the_effective_rules(policy_file, tmp_path) -> None:
    rows = {r["action"]: r for r in json.loads(_policy_list({"DROVER_AUTH__POLICY_FILE": str(policy_file)}).stdout)}
    assert rows["ListHosts"]["rule"] == "project_reader" and rows["ListHosts"]["overridden"]
    assert rows["CreateServer"] == {**rows["CreateServer"], "rule": "project_member", "overridden": False}
    assert {r["action"].split(":")[0] for r in rows.values()} == {
        m.name for m in api_pb2.DESCRIPTOR.services_by_name["ApiService"].methods}
    bad = tmp_path / "bad.toml"
    bad.write_text('CreateServer = "everyone"\n')
    proc = _policy_list({"DROVER_AUTH__POLICY_FILE": str(bad)})
    assert proc.returncode != 0 and "rule must be one of" in proc.stderr
