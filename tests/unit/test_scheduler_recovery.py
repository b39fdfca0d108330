"""A restarted scheduler: claims restored from the store, released even before their host reports,
and no selects answered until the hosts holding them are back."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from drover.config import DroverConfig
from drover.services.common import states
from drover.services.common.errors import ApiError
from drover.services.scheduler.service import SchedulerServicer
from drover.store import db
from drover.store import models as m
from drover.v1 import scheduler_pb2


class _Context:
    async def abort(self, code: grpc.StatusCode, details: str, **_: object) -> None:
        raise ApiError(code, details)

    def set_trailing_metadata(self, *_: object) -> None: ...

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}  # a plaintext caller: the in-process tests run without mTLS


def _store(tmp_path: Path, *instances: tuple[str, str, str]) -> object:
    url = f"sqlite:///{tmp_path / 'sched.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    sessions = db.session_factory(engine)
    with sessions.begin() as s:
        for iid, host, vm_state in instances:
            s.add(m.Instance(id=iid, name=iid, project_id="p", user_id="u", flavor_id="1", image_id="i",
                             vcpus=1, memory_mb=512, root_gb=1, vm_state=vm_state, host=host))
    return sessions


def _report(host: str) -> scheduler_pb2.ReportHostsRequest:
    return scheduler_pb2.ReportHostsRequest(reports=[scheduler_pb2.HostReport(
        host=host, agent_address="127.0.0.1:1", vcpus=8, memory_mb=8192, disk_gb=100, enabled=True)])


async def _used(sched: SchedulerServicer, host: str) -> int:
    resp = await sched.ListHosts(scheduler_pb2.SchedulerServiceListHostsRequest(hosts=[host]), _Context())
    return sum(h.memory_mb_used for h in resp.hosts)


async def test_a_claim_released_before_its_host_reports_does_not_come_back(tmp_path: Path) -> None:
    sessions = _store(tmp_path, ("a", "h1", states.ACTIVE), ("b", "h1", states.ACTIVE),
                      ("gone", "h1", states.ERROR))
    sched = SchedulerServicer(DroverConfig(), sessions)  # type: ignore[arg-type]
    released = await sched.ReleaseClaims(scheduler_pb2.ReleaseClaimsRequest(instance_ids=["a"]), _Context())
    assert released.released == 1
    await sched.ReportHosts(_report("h1"), _Context())
    assert await _used(sched, "h1") == 512, "only b holds memory: a was released, an ERROR server holds none"


async def test_selects_wait_until_the_hosts_with_allocations_report(tmp_path: Path) -> None:
    sessions = _store(tmp_path, ("a", "h1", states.ACTIVE), ("b", "h2", states.ACTIVE))
    sched = SchedulerServicer(DroverConfig(), sessions)  # type: ignore[arg-type]
    spec = scheduler_pb2.RequestSpec(instance_ids=["new"], vcpus=1, memory_mb=512, root_gb=1)
    req = scheduler_pb2.SelectDestinationsBatchRequest(requests=[scheduler_pb2.SelectDestinationsRequest(spec=spec)])
    await sched.ReportHosts(_report("h1"), _Context())
    with pytest.raises(ApiError) as err:
        await sched.SelectDestinationsBatch(req, _Context())
    assert err.value.code == grpc.StatusCode.UNAVAILABLE and "have not reported" in err.value.message
    await sched.ReportHosts(_report("h2"), _Context())
    resp = await sched.SelectDestinationsBatch(req, _Context())
    assert resp.results[0].code == 0 and resp.results[0].selections[0].host in ("h1", "h2")
