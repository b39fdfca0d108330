"""Client side of the mesh load harness: one process = one asyncio loop driving CreateServer + WatchServer.

Closed loop: ``concurrency`` lanes, each sending its next create when its last server settled. Open loop:
each create is sent when it is due (a shared start plus its offset in the schedule) and timed from then.

Kept apart from ``benchmarks.mesh`` so that the worker processes (multiprocessing "spawn") import only
grpc and the generated stubs, not matplotlib/rich.

Times are ``time.monotonic()`` (CLOCK_MONOTONIC: one clock for every process on the machine), so the
parent can put the records of all workers on one time axis. ``t_accept_wall`` (``time.time()``) is kept
as well, to compare with the wall-clock timestamps the services record in instance action events.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import resource
import time
from typing import Any

import grpc

from drover import retry
from drover.v1 import api_pb2, api_pb2_grpc, types_pb2

# Progress ranks of a server as seen in its revisions; t[r] = first time a revision of rank >= r was seen.
R_START, R_HOST, R_NET, R_BDM, R_SPAWN, R_END = 0, 1, 2, 3, 4, 5

# Record layout (a tuple per server, cheap to pickle back to the parent).
FIELDS = (
    "index",  # 0..N-1
    "id",  # server id ("" if CreateServer failed)
    "t_start",  # CreateServer sent
    "t_due",  # when it was due: the open-loop schedule's time (closed loop: = t_start)
    "t_accept",  # CreateServer answered OK
    "t_accept_wall",  # same, time.time()
    "create_code",  # gRPC status name of a failed CreateServer ("" if OK)
    "t_host",  # first revision with a host assigned (or anything later)
    "t_net",  # first revision with task_state NETWORKING (or anything later)
    "t_spawn",  # first revision with task_state SPAWNING (or anything later)
    "t_end",  # ACTIVE or ERROR seen (stream end)
    "final",  # ACTIVE / ERROR / BUILD (unfinished) / DELETED / "" (create failed)
    "exact",  # bitmask: bit r set when a revision of exactly rank r was seen (not skipped over)
    "revisions",  # WatchServer messages received
    "watch_code",  # gRPC status name of a failed WatchServer ("" if OK)
    "fault",  # fault message on ERROR
    "lag_host",  # client receipt (wall) - server.updated_at of the host-assigned revision: conductor → client
    "lag_end",  # same for the ACTIVE/ERROR revision
    "c2c_end",  # server.updated_at - server.launched_at of the ACTIVE revision: compute done → conductor stored
    "notes",  # bitmask of notifications seen on the stream: 1 create.start, 2 create.end, 4 create.error
)
NOTE_BITS = {"instance.create.start": 1, "instance.create.end": 2, "instance.create.error": 4}


def _wall(ts: object) -> float:
    return ts.seconds + ts.nanos / 1e9  # type: ignore[attr-defined]


def rank(server: types_pb2.Server) -> int:
    if server.vm_state in (types_pb2.VM_STATE_ACTIVE, types_pb2.VM_STATE_ERROR, types_pb2.VM_STATE_DELETED):
        return R_END
    ts = server.task_state
    if ts == types_pb2.TASK_STATE_SPAWNING:
        return R_SPAWN
    if ts == types_pb2.TASK_STATE_BLOCK_DEVICE_MAPPING:
        return R_BDM
    if ts == types_pb2.TASK_STATE_NETWORKING:
        return R_NET
    if server.host:
        return R_HOST
    return R_START


FINAL_NAMES = {
    types_pb2.VM_STATE_ACTIVE: "ACTIVE",
    types_pb2.VM_STATE_ERROR: "ERROR",
    types_pb2.VM_STATE_DELETED: "DELETED",
}

# counters per worker in the shared array: started, accepted, active, failed (create failed or ERROR),
# unfinished (gave up watching after the settle timeout)
C_STARTED, C_ACCEPTED, C_ACTIVE, C_FAILED, C_UNFINISHED = range(5)
NCOUNTERS = 5


class Worker:
    def __init__(self, wid: int, cfg: dict[str, Any], counters: Any, stop: Any) -> None:
        self.wid = wid
        self.cfg = cfg
        self.counters = counters
        self.base = wid * NCOUNTERS
        self.stop = stop
        self.records: list[tuple[Any, ...]] = []

    def bump(self, which: int) -> None:
        self.counters[self.base + which] += 1

    async def one(self, stub: api_pb2_grpc.ApiServiceStub, index: int, t_due: float | None = None) -> None:
        cfg = self.cfg
        req = api_pb2.CreateServerRequest(
            name=f"{cfg['name_prefix']}-{index:06d}", flavor_ref=cfg["flavor"], image_ref=cfg["image"],
            client_token=retry.new_token(),  # a retried create returns the same server
        )
        t = [0.0] * 6
        exact = 0
        lag_host = lag_end = c2c_end = math.nan
        notes = 0
        sid, code, watch_code, final, fault, revisions = "", "", "", "", "", 0
        t_accept = t_accept_wall = 0.0
        self.bump(C_STARTED)
        t_start = time.monotonic()
        if t_due is None:
            t_due = t_start
        try:
            resp = await retry.call_async(
                lambda: stub.CreateServer(req, timeout=cfg["rpc_timeout"], metadata=cfg["metadata"]),
                deadline=cfg["rpc_timeout"] * 3)
        except (grpc.aio.AioRpcError, asyncio.CancelledError) as exc:
            cancelled = isinstance(exc, asyncio.CancelledError)
            code = "CANCELLED_BY_HARNESS" if cancelled else exc.code().name  # type: ignore[union-attr]
            if not cancelled:
                self.bump(C_FAILED)
            self.records.append((index, "", t_start, t_due, 0.0, 0.0, code, 0.0, 0.0, 0.0, time.monotonic(), "", 0,
                                 0, "", "", math.nan, math.nan, math.nan, 0))
            if cancelled:
                raise
            return
        t_accept = time.monotonic()
        t_accept_wall = time.time()
        self.bump(C_ACCEPTED)
        sid = resp.server.id
        seen_revision = resp.server.revision
        best = R_START
        attempts = 0
        cancelled = False
        while True:
            try:
                left = cfg["settle_timeout"] - (time.monotonic() - t_accept)
                if left <= 0:
                    watch_code = "DEADLINE_EXCEEDED"
                    break
                # since_revision: a watch that opens after the build moved on still gets every step.
                request = api_pb2.WatchServerRequest(id=sid, since_revision=seen_revision)
                async for ev in stub.WatchServer(request, metadata=cfg["metadata"], timeout=left):
                    now = time.monotonic()
                    revisions += 1
                    seen_revision = max(seen_revision, ev.server.revision)
                    if ev.HasField("notification"):
                        notes |= NOTE_BITS.get(ev.notification.event_type, 0)
                    r = rank(ev.server)
                    exact |= 1 << r
                    if r > best:
                        for k in range(best + 1, r + 1):
                            t[k] = now
                        srv = ev.server
                        if srv.HasField("updated_at"):
                            if best < R_HOST <= r and r != R_END:
                                lag_host = time.time() - _wall(srv.updated_at)
                            if r == R_END:
                                lag_end = time.time() - _wall(srv.updated_at)
                                if srv.HasField("launched_at"):
                                    c2c_end = _wall(srv.updated_at) - _wall(srv.launched_at)
                        best = r
                    if r == R_END:
                        final = FINAL_NAMES.get(ev.server.vm_state, "")
                        if ev.server.vm_state == types_pb2.VM_STATE_ERROR:
                            fault = ev.server.fault.message[:300]
                watch_code = ""
                break
            except grpc.aio.AioRpcError as exc:
                watch_code = exc.code().name
                attempts += 1
                if attempts > cfg["watch_retries"] or exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    break
                await asyncio.sleep(0.2 * attempts)
            except asyncio.CancelledError:
                cancelled = True
                break
        if not final:
            final = "BUILD"
        if final == "ACTIVE":
            self.bump(C_ACTIVE)
        elif final == "BUILD" and not cancelled:
            self.bump(C_UNFINISHED)
        elif not cancelled:
            self.bump(C_FAILED)
        self.records.append(
            (index, sid, t_start, t_due, t_accept, t_accept_wall, code, t[R_HOST], t[R_NET], t[R_SPAWN],
             t[R_END] or time.monotonic(), final, exact, revisions, watch_code, fault, lag_host, lag_end, c2c_end,
             notes)
        )
        if cancelled:
            raise asyncio.CancelledError

    async def run(self, ready: Any = None, t0: Any = None) -> dict[str, Any]:
        """Closed loop (``concurrency`` lanes) or, with ``cfg["schedule"]``, open loop from a shared start."""
        cfg = self.cfg
        open_loop = cfg.get("schedule") is not None
        in_flight = cfg["max_in_flight"] if open_loop else cfg["concurrency"]
        channels = [api_channel(cfg["target"]) for _ in range(cfg["channels"])]
        stubs = [api_pb2_grpc.ApiServiceStub(c) for c in channels]
        if open_loop:  # connect first: connection set-up must not delay the first due requests
            await asyncio.gather(*(asyncio.wait_for(c.channel_ready(), 30) for c in channels))
            ready.value += 1
            while t0.value == 0.0 and not self.stop.is_set():
                await asyncio.sleep(0.005)
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        w0 = time.monotonic()
        if open_loop:
            work, unsent = self.dispatch(stubs, t0.value, in_flight)
        else:
            work, unsent = self.lanes(stubs)

        async def watch_stop() -> None:
            while not self.stop.is_set():
                await asyncio.sleep(0.2)

        stopper: asyncio.Future[Any] = asyncio.ensure_future(watch_stop())
        done, _ = await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        aborted = stopper in done and not work.done()
        stopper.cancel()
        if aborted:
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
        else:
            work.result()
        ru = resource.getrusage(resource.RUSAGE_SELF)
        load_wall = time.monotonic() - w0
        for c in channels:
            await c.close()
        return {
            "wid": self.wid,
            "pid": os.getpid(),
            "records": self.records,
            "aborted": aborted,
            "unstarted": unsent(),
            "cpu_s": ru.ru_utime + ru.ru_stime,
            # the generator's own cost from its first request to its last server settled (start-up excluded)
            "load_cpu_s": (ru.ru_utime + ru.ru_stime) - (ru0.ru_utime + ru0.ru_stime),
            "load_wall_s": load_wall,
        }

    def lanes(self, stubs: list[api_pb2_grpc.ApiServiceStub]) -> tuple[asyncio.Future[Any], Any]:
        """Closed loop: ``concurrency`` lanes, each sending its next create when its last server settled."""
        cfg = self.cfg
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(cfg["first"], cfg["n_total"], cfg["stride"]):
            queue.put_nowait(i)

        async def lane(k: int) -> None:
            stub = stubs[k % len(stubs)]
            while not queue.empty():
                await self.one(stub, queue.get_nowait())

        async def all_lanes() -> None:
            results = await asyncio.gather(*(lane(k) for k in range(cfg["concurrency"])), return_exceptions=True)
            for res in results:
                if isinstance(res, BaseException):
                    raise res

        return asyncio.ensure_future(all_lanes()), queue.qsize

    def dispatch(self, stubs: list[api_pb2_grpc.ApiServiceStub], t0: float,
                 max_in_flight: int) -> tuple[asyncio.Future[Any], Any]:
        """Open loop: send each create when it is due (``t0`` + offset), never waiting for earlier answers.

        ``max_in_flight`` only bounds memory when the mesh falls far behind: a create that finds it
        full waits, and the wait counts in its latency (it is timed from when it was due).
        """
        schedule: list[tuple[int, float]] = self.cfg["schedule"]
        slots = asyncio.Semaphore(max_in_flight)
        tasks: set[asyncio.Task[None]] = set()
        sent = 0

        def finished(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            slots.release()

        async def send_all() -> None:
            nonlocal sent
            try:
                for index, offset in schedule:
                    due = t0 + offset
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await slots.acquire()
                    task = asyncio.create_task(self.one(stubs[index % len(stubs)], index, due))
                    tasks.add(task)
                    task.add_done_callback(finished)
                    sent += 1
                while tasks:
                    await asyncio.gather(*list(tasks))
            except asyncio.CancelledError:
                for task in list(tasks):
                    task.cancel()
                await asyncio.gather(*list(tasks), return_exceptions=True)
                raise

        return asyncio.ensure_future(send_all()), lambda: len(schedule) - sent


def api_channel(target: str) -> grpc.aio.Channel:
    """The one place the harness opens an ApiService channel (add credentials here when the API needs them)."""
    opts = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", 64 << 20)]
    return grpc.aio.insecure_channel(target, options=opts)


def call_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Metadata of every ApiService call: the bearer token when there is one."""
    return (("authorization", f"Bearer {token}"),) if token else ()


def worker_main(wid: int, cfg: dict[str, Any], counters: Any, stop: Any, out: Any, ready: Any = None,
                t0: Any = None) -> None:
    """Entry point of one client process; puts one result dict on ``out``.

    Open loop: the worker connects, bumps ``ready``, and waits for the parent to set ``t0`` (the shared
    CLOCK_MONOTONIC start every due time is relative to).
    """
    try:
        result = asyncio.run(Worker(wid, cfg, counters, stop).run(ready, t0))
    except BaseException as exc:  # report, don't hang the parent
        result = {"wid": wid, "pid": os.getpid(), "records": [], "aborted": True, "unstarted": 0,
                  "cpu_s": 0.0, "load_cpu_s": 0.0, "load_wall_s": 0.0, "error": f"{type(exc).__name__}: {exc}"}
    out.put(result)
