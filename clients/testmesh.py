"""A real mesh for the Go, TypeScript and Rust clients' integration tests.

Starts the four services on free loopback ports (fake driver, a temporary SQLite store),
registers an image and a flavor no host can fit, and puts a TCP proxy in front of the API so
a test can cut every open connection (a real disconnect, for resuming WatchServer from
``since_revision``). Prints one JSON line on stdout:

    {"api": "127.0.0.1:port (the proxy)", "data_dir": ...,
     "image": ..., "flavor": "m1.tiny", "huge_flavor": ...}

then reads commands from stdin: ``cut`` closes every proxied connection and answers ``cut``;
end of input stops the mesh. Once the API requires a token, clients read it from
``<data_dir>/admin.token`` (the mesh writes it there).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

from drover.localmesh import LocalMesh, free_port
from drover.v1 import api_pb2, api_pb2_grpc, types_pb2

FAKE_HOSTS = 2
IMAGE = "client-test-image"
HUGE_FLAVOR = "client-huge"


class CuttingProxy:
    """Forwards loopback TCP connections to ``target``; ``cut()`` drops all of them at once."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.address = f"127.0.0.1:{free_port()}"
        self.loop = asyncio.new_event_loop()
        self.writers: set[asyncio.StreamWriter] = set()
        started = threading.Event()
        threading.Thread(target=self._run, args=(started,), daemon=True).start()
        started.wait()

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        host, port = self.address.rsplit(":", 1)
        self.loop.run_until_complete(asyncio.start_server(self._accept, host, int(port)))
        started.set()
        self.loop.run_forever()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        self.writers.update((client_w, server_w))
        await asyncio.gather(self._pump(client_r, server_w), self._pump(server_r, client_w))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    def cut(self) -> None:
        async def close_all() -> None:
            for w in list(self.writers):
                w.transport.abort()
            self.writers.clear()

        asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(5)


def _metadata(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")] if token else []


def _prepare_catalog(address: str, token: str, data_dir: Path) -> None:
    """Wait for the fake hosts, then register the test image and the flavor no host fits."""
    md = _metadata(token)
    with grpc.insecure_channel(address) as chan:
        api = api_pb2_grpc.ApiServiceStub(chan)
        deadline = time.monotonic() + 30
        while len(api.ListHosts(api_pb2.ListHostsRequest(), metadata=md, timeout=5).hosts) < FAKE_HOSTS:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake hosts never reported to the scheduler")
            time.sleep(0.1)
        disk = data_dir / "images" / "client-test-disk.raw"  # inside the API's default image directories
        disk.parent.mkdir(exist_ok=True)
        disk.write_bytes(b"\0" * 4096)
        api.CreateImage(api_pb2.CreateImageRequest(name=IMAGE, path=str(disk), disk_format="raw"),
                        metadata=md, timeout=30)
        api.CreateFlavor(api_pb2.CreateFlavorRequest(flavor=types_pb2.Flavor(
            name=HUGE_FLAVOR, vcpus=1, memory_mb=10_000_000, root_gb=1)), metadata=md, timeout=30)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="drover-clients-") as tmp:
        data_dir = Path(tmp)
        mesh = LocalMesh.on_free_ports(
            data_dir,
            COMPUTE__FAKE_HOSTS=str(FAKE_HOSTS),
            COMPUTE__REPORT_INTERVAL="1",
            # Each spawn step takes this long, so a test can cut the connection mid-build.
            COMPUTE__FAKE_STEP_SECONDS="0.3",
        )
        with mesh:
            token_file = data_dir / "admin.token"
            token = token_file.read_text().strip() if token_file.exists() else ""
            _prepare_catalog(mesh.addresses["api"], token, data_dir)
            proxy = CuttingProxy(mesh.addresses["api"])
            print(json.dumps({"api": proxy.address, "data_dir": str(data_dir), "image": IMAGE,
                              "flavor": "m1.tiny", "huge_flavor": HUGE_FLAVOR}), flush=True)
            for line in sys.stdin:
                if line.strip() == "cut":
                    proxy.cut()
                    print("cut", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
