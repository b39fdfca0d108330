"""`drover up`: the whole mesh on one machine, as child processes, stopped cleanly on a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from drover.auth.client import admin_token_path
from drover.config import DroverConfig
from drover.localmesh import LocalMesh

REPO = Path(__file__).resolve().parents[2]
DEFAULT_IMAGE_NAME = "drover-tiny"


def default_image_files() -> tuple[Path, Path] | None:
    base = Path(os.environ.get("DROVER_IMAGE_DIR", REPO / "images" / "build"))
    kernel, initrd = base / "vmlinuz", base / "initrd.img"
    return (kernel, initrd) if kernel.is_file() and initrd.is_file() else None


def build_default_image() -> tuple[Path, Path] | None:
    script = REPO / "scripts" / "build-default-image.sh"
    if script.is_file():
        subprocess.run(["bash", str(script)], check=False, stdout=sys.stderr)
    return default_image_files()


def register_default_image(mesh: LocalMesh) -> str | None:
    """Register the default kernel+initrd image once; returns its name (or None when not built)."""
    from drover.agent.libvirt import default_image
    from drover.v1 import api_pb2, api_pb2_grpc

    files = default_image_files() or build_default_image()
    if files is None:
        return None
    kernel, initrd = files
    with mesh.api_channel() as chan:
        stub = api_pb2_grpc.ApiServiceStub(chan)
        images = stub.ListImages(api_pb2.ListImagesRequest(), timeout=10).images
        if any(i.name == DEFAULT_IMAGE_NAME and i.path == str(kernel) for i in images):
            return DEFAULT_IMAGE_NAME
        stub.CreateImage(
            api_pb2.CreateImageRequest(
                name=DEFAULT_IMAGE_NAME,
                path=str(kernel),
                initrd_path=str(initrd),
                disk_format="kernel",
                properties={**default_image.PROPERTIES, "hw_architecture": "x86_64"},
            ),
            timeout=60,
        )
    return DEFAULT_IMAGE_NAME


def run_mesh(cfg: DroverConfig, env_overrides: dict[str, str]) -> int:
    data = cfg.data_path
    mesh = LocalMesh(
        data_dir=data,
        addresses={"scheduler": cfg.scheduler.listen, "conductor": cfg.conductor.listen,
                   "compute": cfg.compute.listen, "api": cfg.api.listen},
        env=env_overrides,
        metrics={name: f"http://127.0.0.1:{port}/metrics" for name, port in (
            ("scheduler", cfg.scheduler.metrics_port), ("conductor", cfg.conductor.metrics_port),
            ("compute", cfg.compute.metrics_port), ("api", cfg.api.metrics_port)) if port},
    )
    stop = {"now": False}

    def _on_signal(signum: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    code = 0
    try:
        try:
            mesh.start()
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        image = register_default_image(mesh)
        hosts = cfg.compute.fake_hosts if cfg.compute.driver == "fake" else 1
        print(f"drover is up: {cfg.compute.driver} driver, {hosts} host(s), store {cfg.db_url}")
        for name, address in mesh.addresses.items():
            print(f"  {name:<10} grpc {address}   metrics {mesh.metrics.get(name, '-')}")
        print(f"  logs       {mesh.log_dir}")
        print(f"  admin token {admin_token_path(data)} (the CLI on this machine uses it)")
        if image:
            print(f"try: drover server create demo --flavor m1.tiny --image {image} --wait")
        else:
            print("warning: the default image is not built (scripts/build-default-image.sh)", file=sys.stderr)
        print("Ctrl-C stops the mesh.", flush=True)
        while not stop["now"]:
            for name, rc in mesh.exited().items():
                print(f"error: {name} exited with {rc}; see {mesh.log_dir / (name + '.log')}", file=sys.stderr)
                stop["now"] = True
                code = 1
            time.sleep(0.2)
    finally:
        mesh.stop()
        print("drover stopped.", file=sys.stderr)
    return code
