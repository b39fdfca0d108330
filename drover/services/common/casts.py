"""Casts: fire-and-forget messages on long-lived bidirectional gRPC streams.

Delivery is at least once, application exactly once:

* the sender numbers its casts 1, 2, 3 … under a ``sender_id`` unique to its
  process, keeps every cast until it is acknowledged, and replays the
  unacknowledged ones in order after a reconnect;
* a stream opens with a *hello* (a request with no cast set) whose ``seq`` is
  the highest ack the sender has seen; the receiver answers with its own
  high-water mark for that sender;
* the receiver applies each (sender_id, seq) once, acknowledges cumulatively
  (every seq ≤ acked_seq is applied) and ignores replays of applied ids;
* the receiver repeats its ack every ``heartbeat`` seconds even without
  progress, and a sender that hears nothing for ``liveness_timeout`` seconds
  drops the stream and reconnects, so a stream that silently stalls heals.

Nova's RabbitMQ casts may be lost; these may not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import grpc

from drover.services.common import metrics
from drover.v1 import casts_pb2

log = logging.getLogger(__name__)


class CastRefused(Exception):
    """A cast its sender may never send: the receiver closes the stream with PERMISSION_DENIED."""


class CastMessage(Protocol):
    header: casts_pb2.CastHeader
    batch: Any  # repeated messages of the same type: several casts in one stream message

    def WhichOneof(self, name: str) -> str | None: ...


Req = TypeVar("Req", bound=Any)
Resp = TypeVar("Resp", bound=Any)


class CastSender(Generic[Req]):
    """The sending side of one cast stream to one peer."""

    def __init__(
        self,
        name: str,
        open_stream: Callable[[], grpc.aio.StreamStreamCall],
        make_request: Callable[..., Req],
        *,
        reconnect_min: float = 0.05,
        reconnect_max: float = 2.0,
        liveness_timeout: float = 10.0,
        on_state: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self.sender_id = uuid.uuid4().hex
        self._open_stream = open_stream
        self._make_request = make_request
        self._seq = 0
        self._acked = 0
        self._pending: dict[int, Req] = {}
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._reconnect_min = reconnect_min
        self._reconnect_max = reconnect_max
        self._on_state = on_state
        self._liveness = liveness_timeout
        self._last_heard = 0.0
        self.replays = 0
        self.connects = 0
        self.writes = 0  # stream messages written (a batch counts once)
        self.max_batch = 256
        self.max_batch_bytes = 1 << 20  # well under gRPC's 4 MiB message limit
        self._call: grpc.aio.StreamStreamCall | None = None

    @property
    def unacked(self) -> int:
        return len(self._pending)

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The sending loop (for a watchdog)."""
        return self._task

    def start(self) -> None:
        """Start the sending loop, or start it again if it ended (unacknowledged casts are kept)."""
        if (self._task is None or self._task.done()) and not self._closing:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"cast-sender-{self.name}")

    def cast(self, **payload: Any) -> int:
        """Queue one cast and return its seq at once; delivery happens in the background."""
        self._seq += 1
        header = casts_pb2.CastHeader(sender_id=self.sender_id, seq=self._seq)
        header.sent_at.GetCurrentTime()
        self._pending[self._seq] = self._make_request(header=header, **payload)
        metrics.CASTS_SENT.labels(self.name).inc()
        self._drained.clear()
        self._wakeup.set()
        self.start()
        return self._seq

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every cast so far is acknowledged."""
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def close(self, drain_timeout: float = 0.0) -> None:
        if drain_timeout > 0 and self._pending:
            await self.flush(drain_timeout)
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    def break_stream(self) -> None:
        """Cut the current stream (tests: simulate a network failure mid-flight)."""
        if self._call is not None:
            self._call.cancel()

    def _ack(self, acked_seq: int) -> None:
        if acked_seq <= self._acked:
            return
        for seq in range(self._acked + 1, acked_seq + 1):
            self._pending.pop(seq, None)
        self._acked = acked_seq
        if not self._pending:
            self._drained.set()

    async def _run(self) -> None:
        delay = self._reconnect_min
        while not self._closing:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            try:
                await self._session()
                delay = self._reconnect_min
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._closing or (task is not None and task.cancelling()):
                    raise
                # Otherwise the call itself was cancelled (the stream was cut): reconnect.
            except grpc.aio.AioRpcError as exc:
                log.debug("cast stream %s broke: %s", self.name, exc.code())
            except (asyncio.InvalidStateError, ConnectionError) as exc:
                log.debug("cast stream %s broke: %s", self.name, exc)
            except Exception:
                log.exception("cast stream %s failed", self.name)
            self._call = None
            if self._closing:
                return
            if self._on_state:
                self._on_state("reconnecting")
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._reconnect_max)

    async def _session(self) -> None:
        call = self._open_stream()
        self._call = call
        hello = self._make_request(header=casts_pb2.CastHeader(sender_id=self.sender_id, seq=self._acked))
        await asyncio.wait_for(call.write(hello), self._liveness)
        first = await asyncio.wait_for(call.read(), self._liveness)
        loop = asyncio.get_running_loop()
        self._last_heard = loop.time()
        if first is grpc.aio.EOF:
            raise ConnectionError("cast stream closed before the hello was answered")
        self.connects += 1
        self._ack(first.ack.acked_seq)
        sent = self._acked
        if self._pending and self.connects > 1:
            self.replays += len(self._pending)
        reader = asyncio.get_running_loop().create_task(self._read_acks(call))
        try:
            while True:
                if reader.done():
                    if not reader.cancelled():
                        reader.result()  # re-raise the stream's error
                    raise ConnectionError("cast stream closed")
                while sent < self._seq:
                    # Everything queued since the last write goes in one stream message: a write
                    # costs a turn of the event loop, and a busy loop has few turns to spare.
                    batch: list[Req] = []
                    size = 0
                    while sent < self._seq and len(batch) < self.max_batch and size < self.max_batch_bytes:
                        sent += 1
                        msg = self._pending.get(sent)
                        if msg is not None:
                            batch.append(msg)
                            size += msg.ByteSize()
                    if batch:
                        out = batch[0] if len(batch) == 1 else self._make_request(batch=batch)
                        await asyncio.wait_for(call.write(out), self._liveness)
                        self.writes += 1
                self._wakeup.clear()
                if sent < self._seq:
                    continue
                if loop.time() - self._last_heard > self._liveness:
                    raise ConnectionError(f"receiver silent for {self._liveness:.0f} s")
                waiter = asyncio.ensure_future(self._wakeup.wait())
                done, _ = await asyncio.wait({waiter, reader}, timeout=self._liveness / 4,
                                             return_when=asyncio.FIRST_COMPLETED)
                if waiter not in done:
                    waiter.cancel()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            call.cancel()

    async def _read_acks(self, call: grpc.aio.StreamStreamCall) -> None:
        loop = asyncio.get_running_loop()
        while True:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                return
            self._last_heard = loop.time()
            self._ack(resp.ack.acked_seq)


@dataclass
class _SenderState:
    applied_through: int = 0
    done: set[int] = field(default_factory=set)
    inflight: set[int] = field(default_factory=set)
    ack_queue: asyncio.Queue[int] | None = None
    last_seen: float = field(default_factory=time.monotonic)


Handler = Callable[[Any], Awaitable[None]]
KeyFunc = Callable[[Any], Iterable[str]]


class CastReceiver(Generic[Resp]):
    """The receiving side: applies casts once, in per-key order, and acks cumulatively.

    ``keys(msg)`` names what a cast touches (e.g. its instance ids); casts
    sharing a key run one after the other in arrival order, others in parallel.
    """

    def __init__(
        self,
        name: str,
        handler: Handler,
        make_response: Callable[..., Resp],
        *,
        keys: KeyFunc | None = None,
        max_concurrency: int = 2048,
        sender_ttl: float = 3600.0,
        heartbeat: float = 2.0,
    ) -> None:
        self.name = name
        self.receiver_id = uuid.uuid4().hex
        self._handler = handler
        self._make_response = make_response
        self._keys = keys
        self._senders: dict[str, _SenderState] = {}
        self._tails: dict[str, asyncio.Future[None]] = {}
        self._sem = asyncio.Semaphore(max_concurrency)
        self._sender_ttl = sender_ttl
        self._heartbeat = heartbeat
        self._tasks: set[asyncio.Task[None]] = set()
        self.applied = 0
        self.duplicates = 0
        # Casts whose handler raised: acknowledged all the same (a replay would raise again and wedge
        # the stream), so they are counted and logged at ERROR for operators and tests to see.
        self.failed = 0

    @property
    def inflight(self) -> int:
        return sum(len(s.inflight) for s in self._senders.values())

    async def serve(self, requests: Any, context: grpc.aio.ServicerContext, *,
                    admit: Callable[[Any], bool] | None = None, peer: str = "") -> Any:
        """The stream-stream handler body: ``yield from`` it in the servicer.

        ``admit(cast)`` vets each cast: False skips it (acknowledged as applied, so the stream
        moves on); ``CastRefused`` closes the stream with PERMISSION_DENIED. ``peer`` names the
        authenticated sender: sender ids are kept per peer, so one peer cannot move another's
        acknowledgements (a hello claiming a high seq would make its real casts look like replays).
        """
        acks: asyncio.Queue[int] = asyncio.Queue()
        last_ack = -1
        reader = asyncio.get_running_loop().create_task(self._read(requests, acks, admit, peer))
        try:
            while True:
                getter = asyncio.ensure_future(acks.get())
                done, _ = await asyncio.wait({getter, reader}, timeout=self._heartbeat,
                                             return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    seq = getter.result()
                    # Coalesce: only the newest ack matters.
                    while not acks.empty():
                        seq = max(seq, acks.get_nowait())
                elif reader in done:
                    getter.cancel()
                    try:
                        reader.result()
                    except CastRefused as exc:
                        log.warning("%s: %s", self.name, exc)
                        await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
                    return
                else:
                    getter.cancel()
                    if last_ack < 0:
                        continue  # no hello yet
                    seq = last_ack  # heartbeat: the sender hears we are alive
                last_ack = max(seq, last_ack)
                yield self._make_response(ack=casts_pb2.CastAck(acked_seq=last_ack, receiver_id=self.receiver_id))
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _read(self, requests: Any, acks: asyncio.Queue[int], admit: Callable[[Any], bool] | None,
                    peer: str) -> None:
        state: _SenderState | None = None
        async for envelope in requests:
            for msg in envelope.batch or (envelope,):
                header = msg.header
                if state is None:
                    sender = f"{peer}/{header.sender_id}" if peer else header.sender_id
                    state = self._senders.get(sender)
                    if state is None:
                        self._gc()
                        state = self._senders[sender] = _SenderState()
                    # Hello: everything up to header.seq was acknowledged before, so applied.
                    if msg.WhichOneof("cast") is None and header.seq > state.applied_through:
                        state.applied_through = header.seq
                        state.done = {s for s in state.done if s > header.seq}
                        self._advance(state)
                    state.ack_queue = acks
                    acks.put_nowait(state.applied_through)
                    if msg.WhichOneof("cast") is None:
                        continue
                state.last_seen = time.monotonic()
                seq = header.seq
                if seq <= state.applied_through or seq in state.done or seq in state.inflight:
                    self.duplicates += 1
                    continue
                if admit is not None and not admit(msg):
                    state.done.add(seq)  # refused: never applied, but the stream moves past it
                    self._advance(state)
                    continue
                state.inflight.add(seq)
                await self._sem.acquire()
                self._dispatch(state, seq, msg)

    def _dispatch(self, state: _SenderState, seq: int, msg: Any) -> None:
        keys = list(self._keys(msg)) if self._keys else []
        waits = [self._tails[k] for k in keys if k in self._tails and not self._tails[k].done()]
        finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for k in keys:
            self._tails[k] = finished

        async def run() -> None:
            try:
                if waits:
                    await asyncio.gather(*waits, return_exceptions=True)
                await self._handler(msg)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The handler reports its own failures to the user; a crash must not wedge the stream.
                self.failed += 1
                log.exception("%s: cast %s:%s failed", self.name, msg.header.sender_id, seq)
            finally:
                self._sem.release()
                finished.set_result(None)
                for k in keys:
                    if self._tails.get(k) is finished:
                        del self._tails[k]
                state.inflight.discard(seq)
                state.done.add(seq)
                self.applied += 1
                self._advance(state)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _advance(state: _SenderState) -> None:
        moved = False
        while state.applied_through + 1 in state.done:
            state.applied_through += 1
            state.done.discard(state.applied_through)
            moved = True
        if moved and state.ack_queue is not None:
            state.ack_queue.put_nowait(state.applied_through)

    def _gc(self) -> None:
        cutoff = time.monotonic() - self._sender_ttl
        for sid in [s for s, st in self._senders.items() if st.last_seen < cutoff and not st.inflight]:
            del self._senders[sid]

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for in-flight casts (graceful shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
