"""Cast streams over real gRPC on loopback: at-least-once delivery, applied once, in order per key."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import grpc
import pytest

from drover.services.common.casts import CastReceiver, CastRefused, CastSender
from drover.v1 import casts_pb2, conductor_pb2, conductor_pb2_grpc


class Recorder(conductor_pb2_grpc.ConductorServiceServicer):
    def __init__(self, delay: float = 0.0) -> None:
        self.applied: list[str] = []
        self.delay = delay
        self.receiver: CastReceiver[Any] = CastReceiver(
            "test", self.handle, conductor_pb2.ConductorServiceStreamCastsResponse,
            keys=lambda m: [m.delete_instance.instance_id.split("-")[0]],
        )

    async def handle(self, msg: Any) -> None:
        if self.delay:
            await asyncio.sleep(random.random() * self.delay)
        self.applied.append(msg.delete_instance.instance_id)

    async def StreamCasts(self, request_iterator: Any, context: Any) -> Any:
        async for r in self.receiver.serve(request_iterator, context):
            yield r


async def _server(servicer: Recorder) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    conductor_pb2_grpc.add_ConductorServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


def _sender(address: str) -> tuple[grpc.aio.Channel, CastSender[Any]]:
    chan = grpc.aio.insecure_channel(address)
    stub = conductor_pb2_grpc.ConductorServiceStub(chan)
    return chan, CastSender("t", lambda: stub.StreamCasts(), conductor_pb2.ConductorServiceStreamCastsRequest,
                            reconnect_min=0.01)


def _cast(sender: CastSender[Any], ident: str) -> int:
    return sender.cast(delete_instance=conductor_pb2.DeleteInstanceCast(instance_id=ident))


async def _until(cond: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.0005)


async def test_cast_returns_at_once_and_is_applied_and_acked() -> None:
    rec = Recorder()
    server, address = await _server(rec)
    chan, sender = _sender(address)
    try:
        seqs = [_cast(sender, f"k{i % 3}-{i}") for i in range(50)]
        assert seqs == list(range(1, 51))
        assert await sender.flush(10)
        assert sorted(rec.applied) == sorted(f"k{i % 3}-{i}" for i in range(50))
        assert sender.unacked == 0
    finally:
        await sender.close()
        await chan.close()
        await server.stop(0)


async def test_stream_cut_mid_flight_replays_without_duplicates() -> None:
    rec = Recorder(delay=0.002)
    server, address = await _server(rec)
    chan, sender = _sender(address)
    try:
        expected = []
        cuts = 0
        for i in range(600):
            ident = f"k{i % 7}-{i}"
            expected.append(ident)
            _cast(sender, ident)
            if i % 97 == 96:
                # cut while the receiver holds casts it has not acknowledged (being applied), and
                # maybe some were never sent: their replays must be recognised, not applied again
                cuts += 1
                await _until(lambda n=cuts: sender.connects == n and rec.receiver.inflight > 0)
                sender.break_stream()
        if not await sender.flush(30):
            st = {sid: (x.applied_through, sorted(x.done)[:5], sorted(x.inflight)[:5])
                  for sid, x in rec.receiver._senders.items()}
            pytest.fail(f"{sender.unacked} casts never acknowledged; sender acked={sender._acked} "
                        f"seq={sender._seq} connects={sender.connects} first_pending={min(sender._pending)} "
                        f"task_done={sender._task.done() if sender._task else None} receiver={st}")
        assert sender.connects == cuts + 1 == 1 + 600 // 97, "the stream was not re-established after each cut"
        assert len(rec.applied) == len(set(rec.applied)), "a replayed cast was applied twice"
        assert sorted(rec.applied) == sorted(expected)
        # Per-key order is the send order.
        for k in range(7):
            got = [a for a in rec.applied if a.startswith(f"k{k}-")]
            assert got == [e for e in expected if e.startswith(f"k{k}-")]
        # every cut caught casts being applied, not yet acknowledged: their replays were recognised
        assert 0 < rec.receiver.duplicates <= sender.replays, (rec.receiver.duplicates, sender.replays)
    finally:
        await sender.close()
        await chan.close()
        await server.stop(0)


class FailsOnce(Recorder):
    async def handle(self, msg: Any) -> None:
        if msg.delete_instance.instance_id == "k0-1":
            raise RuntimeError("deliberate handler failure")
        await super().handle(msg)


async def test_a_cast_whose_handler_raises_is_acked_but_counted_and_logged_as_error(caplog) -> None:
    rec = FailsOnce()
    server, address = await _server(rec)
    chan, sender = _sender(address)
    try:
        for i in range(3):
            _cast(sender, f"k0-{i}")
        assert await sender.flush(10)  # acknowledged: a replay would only fail again
        assert rec.applied == ["k0-0", "k0-2"]
        assert (rec.receiver.failed, rec.receiver.applied) == (1, 3)
        errors = [r for r in caplog.records if r.levelname == "ERROR"]
        assert len(errors) == 1 and errors[0].exc_info is not None, errors
        assert "cast" in errors[0].getMessage()
    finally:
        await sender.close()
        await chan.close()
        await server.stop(0)


async def test_casts_survive_receiver_outage() -> None:
    """Casts sent while the receiver is down are delivered once it is back (same address)."""
    rec = Recorder()
    server, address = await _server(rec)
    chan, sender = _sender(address)
    try:
        _cast(sender, "a-1")
        assert await sender.flush(10)
        await server.stop(0)
        for i in range(2, 30):
            _cast(sender, f"a-{i}")
        await asyncio.sleep(0.2)
        assert sender.unacked == 28
        server2 = grpc.aio.server()
        conductor_pb2_grpc.add_ConductorServiceServicer_to_server(rec, server2)
        server2.add_insecure_port(address)
        await server2.start()
        try:
            assert await sender.flush(20)
            assert rec.applied == [f"a-{i}" for i in range(1, 30)]
        finally:
            await server2.stop(0)
    finally:
        await sender.close()
        await chan.close()


async def test_receiver_ignores_replayed_ids() -> None:
    """A raw stream that sends the same (sender, seq) twice gets it applied once."""
    rec = Recorder()
    server, address = await _server(rec)
    try:
        async with grpc.aio.insecure_channel(address) as chan:
            stub = conductor_pb2_grpc.ConductorServiceStub(chan)
            call = stub.StreamCasts()
            from drover.v1 import casts_pb2

            def msg(seq: int, ident: str = "") -> Any:
                req = conductor_pb2.ConductorServiceStreamCastsRequest(
                    header=casts_pb2.CastHeader(sender_id="s1", seq=seq))
                if ident:
                    req.delete_instance.instance_id = ident
                return req

            await call.write(msg(0))
            assert (await call.read()).ack.acked_seq == 0
            for seq in (1, 2, 2, 1, 3):
                await call.write(msg(seq, f"x-{seq}"))
            acked = 0
            while acked < 3:
                acked = (await call.read()).ack.acked_seq
            await call.done_writing()
        assert rec.applied == ["x-1", "x-2", "x-3"]
        assert rec.receiver.duplicates == 2
    finally:
        await server.stop(0)


@pytest.mark.parametrize("hello_seq", [0, 5])
async def test_hello_sets_high_water_mark(hello_seq: int) -> None:
    """A sender that reconnects to a fresh receiver starts from its own acked mark."""
    rec = Recorder()
    server, address = await _server(rec)
    try:
        async with grpc.aio.insecure_channel(address) as chan:
            call = conductor_pb2_grpc.ConductorServiceStub(chan).StreamCasts()
            from drover.v1 import casts_pb2

            hello = conductor_pb2.ConductorServiceStreamCastsRequest(
                header=casts_pb2.CastHeader(sender_id="s2", seq=hello_seq))
            await call.write(hello)
            assert (await call.read()).ack.acked_seq == hello_seq
            nxt = conductor_pb2.ConductorServiceStreamCastsRequest(
                header=casts_pb2.CastHeader(sender_id="s2", seq=hello_seq + 1))
            nxt.delete_instance.instance_id = "y-1"
            await call.write(nxt)
            assert (await call.read()).ack.acked_seq == hello_seq + 1
            await call.done_writing()
        assert rec.applied == ["y-1"]
    finally:
        await server.stop(0)


async def test_casts_queued_together_share_stream_messages_and_keep_order() -> None:
    rec = Recorder()
    server, address = await _server(rec)
    chan, sender = _sender(address)
    sender.max_batch = 64
    try:
        assert await _flush_one(sender)  # connected, so the next casts queue behind a live stream
        writes_before = sender.writes
        for i in range(1000):  # one key: applied strictly in cast order
            _cast(sender, f"k-{i}")
        assert await sender.flush(10)
        assert rec.applied[1:] == [f"k-{i}" for i in range(1000)]
        written = sender.writes - writes_before
        assert 1000 / 64 <= written < 1000, written  # batched, never above the batch limit
    finally:
        await sender.close()
        await chan.close()
        await server.stop(0)


async def _flush_one(sender: CastSender[Any]) -> bool:
    _cast(sender, "k-warmup")
    return await sender.flush(10)


class PeerRecorder(Recorder):
    """Names the stream's peer from metadata (the services take it from the client certificate), and
    vets each cast: ids starting "skip" are ignored, "bad" ones refuse the stream."""

    async def StreamCasts(self, request_iterator: Any, context: Any) -> Any:
        peer = dict(context.invocation_metadata()).get("x-peer", "")

        def admit(msg: Any) -> bool:
            ident = msg.delete_instance.instance_id
            if ident.startswith("bad"):
                raise CastRefused(f"{peer} may not cast {ident}")
            return not ident.startswith("skip")

        async for r in self.receiver.serve(request_iterator, context, admit=admit, peer=peer):
            yield r


def _peer_sender(stub: Any, peer: str) -> CastSender[Any]:
    return CastSender(peer, lambda: stub.StreamCasts(metadata=(("x-peer", peer),)),
                      conductor_pb2.ConductorServiceStreamCastsRequest, reconnect_min=0.01)


async def test_one_peer_cannot_move_another_peers_acknowledgements() -> None:
    """A forger reusing an honest sender's id with a hello claiming a million casts applied would make
    the honest casts look like replays, were sender ids not kept per peer."""
    rec = PeerRecorder()
    server, address = await _server(rec)
    chan = grpc.aio.insecure_channel(address)
    stub = conductor_pb2_grpc.ConductorServiceStub(chan)
    honest, forger = _peer_sender(stub, "honest"), _peer_sender(stub, "forger")
    forger.sender_id = honest.sender_id
    forger._acked = 1_000_000  # its hello says so
    try:
        _cast(forger, "f-1")
        await forger.flush(1.0)
        _cast(honest, "h-1")
        assert await honest.flush(5.0)
        assert rec.applied == ["h-1"]
    finally:
        await honest.close()
        await forger.close()
        await chan.close()
        await server.stop(0)


async def test_admit_skips_a_cast_or_refuses_the_stream() -> None:
    rec = PeerRecorder()
    server, address = await _server(rec)
    chan = grpc.aio.insecure_channel(address)
    stub = conductor_pb2_grpc.ConductorServiceStub(chan)
    sender = _peer_sender(stub, "p")
    try:
        for ident in ("a-1", "skip-2", "a-3"):
            _cast(sender, ident)
        assert await sender.flush(5.0), "a skipped cast is acknowledged: the stream moves past it"
        assert rec.applied == ["a-1", "a-3"]
        call = stub.StreamCasts(metadata=(("x-peer", "p"),))
        hello = conductor_pb2.ConductorServiceStreamCastsRequest(header=casts_pb2.CastHeader(sender_id="x"))
        await call.write(hello)
        await call.read()
        bad = conductor_pb2.ConductorServiceStreamCastsRequest(
            header=casts_pb2.CastHeader(sender_id="x", seq=1),
            delete_instance=conductor_pb2.DeleteInstanceCast(instance_id="bad-1"))
        await call.write(bad)
        assert await call.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "may not cast bad-1" in await call.details()
        assert "bad-1" not in rec.applied
    finally:
        await sender.close()
        await chan.close()
        await server.stop(0)
