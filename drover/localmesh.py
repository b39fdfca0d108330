"""Start the four services as real processes on this machine (drover up, tests, benchmarks)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from drover import parent_watch

SERVICES = ("scheduler", "conductor", "compute", "api")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_serving(address: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60.0) -> bool:
    """Poll grpc.health.v1 until the server says SERVING."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as chan:
        stub = health_pb2_grpc.HealthStub(chan)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                return False
            try:
                resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass
            time.sleep(0.05)
    return False


@dataclass
class LocalMesh:
    """The mesh as child processes. ``addresses`` maps service name → host:port."""

    data_dir: Path
    addresses: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    # Service name → Prometheus /metrics URL.
    metrics: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # Every service that ended: (name, exit code, signal we stopped it with; 0 if it ended by itself).
    ended: list[tuple[str, int, int]] = field(default_factory=list)

    @classmethod
    def on_free_ports(cls, data_dir: Path, **settings: str) -> LocalMesh:
        """A mesh on fresh loopback ports; ``settings`` are extra DROVER_* variables (without prefix)."""
        addrs = {name: f"127.0.0.1:{free_port()}" for name in SERVICES}
        env = {
            "DROVER_DATA_DIR": str(data_dir),
            "DROVER_API__LISTEN": addrs["api"],
            "DROVER_API__CONDUCTOR": addrs["conductor"],
            "DROVER_API__SCHEDULER": addrs["scheduler"],
            "DROVER_CONDUCTOR__LISTEN": addrs["conductor"],
            "DROVER_CONDUCTOR__SCHEDULER": addrs["scheduler"],
            "DROVER_SCHEDULER__LISTEN": addrs["scheduler"],
            "DROVER_COMPUTE__LISTEN": addrs["compute"],
            "DROVER_COMPUTE__CONDUCTOR": addrs["conductor"],
            "DROVER_COMPUTE__SCHEDULER": addrs["scheduler"],
        }
        metrics = {}
        for name in SERVICES:
            port = free_port()
            env[f"DROVER_{name.upper()}__METRICS_PORT"] = str(port)
            metrics[name] = f"http://127.0.0.1:{port}/metrics"
        env.update({f"DROVER_{k.upper()}": str(v) for k, v in settings.items()})
        return cls(data_dir=data_dir, addresses=addrs, env=env, metrics=metrics)

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def prepare_store(self) -> None:
        from drover.config import load_config
        from drover.store.seed import prepare

        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            prepare(load_config().db_url)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def start_service(self, name: str, timeout: float = 60.0) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_file = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "drover", name],
            # Children die with us even if we are killed hard; armed in the child (no preexec_fn).
            env={**os.environ, **self.env, parent_watch.ENV: str(os.getpid())},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        self.procs[name] = proc
        if not wait_serving(self.addresses[name], proc, timeout):
            tail = self.log_tail(name)
            self.stop()
            raise RuntimeError(f"{name} did not become SERVING on {self.addresses[name]}:\n{tail}")

    def start(self, timeout: float = 60.0) -> LocalMesh:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.prepare_store()
        for name in SERVICES:
            self.start_service(name, timeout)
        return self

    def stop_service(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is not None:
            self.ended.append((name, proc.returncode, 0))
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()  # recorded as -9 after `sig`: an unexpected exit unless sig was SIGKILL
            proc.wait()
        self.ended.append((name, proc.returncode, sig))

    def stop(self) -> None:
        for name in reversed(SERVICES):
            self.stop_service(name)

    def exited(self) -> dict[str, int]:
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def unexpected_exits(self) -> list[tuple[str, int]]:
        """Services that ended by themselves, or not as the signal we stopped them with asked."""
        gone = [(n, rc, 0) for n, rc in self.exited().items()]
        return [(n, rc) for n, rc, sig in self.ended + gone if sig == 0 or rc not in (0, -sig)]

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> LocalMesh:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
