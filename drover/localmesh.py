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
from drover.auth import keys, tokens
from drover.auth.client import admin_token_path, authorized_channel
from drover.config import DroverConfig

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

    def config(self) -> DroverConfig:
        """The configuration the services see (this mesh's DROVER_* variables applied)."""
        from drover.config import load_config

        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            return load_config()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def prepare_store(self) -> None:
        from drover.store.seed import prepare

        prepare(self.config().db_url)

    def write_admin_token(self) -> None:
        """Create the built-in issuer's key on first start and write an admin token (0600)."""
        cfg = self.config()
        key = keys.ensure_signing_key(cfg.data_path)
        token = tokens.issue(key, cfg.auth, project="admin", user="admin", roles=["admin"],
                             ttl=cfg.auth.admin_token_ttl)
        keys.write_private(admin_token_path(cfg.data_path), token.encode() + b"\n")

    @property
    def token(self) -> str:
        """The admin token this mesh's API accepts."""
        return admin_token_path(self.data_dir).read_text().strip()

    def issue_token(self, project: str, user: str, roles: list[str], ttl: float = 3600.0) -> str:
        """A token of this mesh's built-in issuer (tests: other projects and roles)."""
        cfg = self.config()
        return tokens.issue(keys.load_signing_key(cfg.data_path), cfg.auth, project=project, user=user,
                            roles=roles, ttl=ttl)

    def api_channel(self, token: str | None = None, api: str = "api") -> grpc.Channel:
        """A synchronous channel to the API (or another one, ``api``) that sends ``token`` (default:
        the admin token)."""
        return authorized_channel(self.addresses[api], token if token is not None else self.token)

    def start_service(self, name: str, timeout: float = 60.0, *, command: str = "",
                      env: dict[str, str] | None = None) -> None:
        """Start service ``name`` (``command``: which `drover` subcommand, default the name)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_file = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "drover", command or name],
            # Children die with us even if we are killed hard; armed in the child (no preexec_fn).
            env={**os.environ, **self.env, **(env or {}), parent_watch.ENV: str(os.getpid())},
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
        self.write_admin_token()
        for name in SERVICES:
            self.start_service(name, timeout)
        return self

    def stop_service(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def start_extra_api(self, name: str = "api2", timeout: float = 60.0) -> str:
        """Another ApiService process on the same store and services (two APIs behind a balancer);
        returns its address."""
        address = f"127.0.0.1:{free_port()}"
        self.addresses[name] = address
        self.start_service(name, timeout, command="api",
                           env={"DROVER_API__LISTEN": address, "DROVER_API__METRICS_PORT": "0"})
        return address

    def stop(self) -> None:
        extras = [n for n in self.procs if n not in SERVICES]
        for name in [*extras, *reversed(SERVICES)]:
            self.stop_service(name)

    def exited(self) -> dict[str, int]:
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> LocalMesh:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
