"""The README's two commands: `drover up`, then the CLI in another terminal, with no token given."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drover.agent.libvirt import default_image
from drover.localmesh import free_port


def test_drover_up_writes_an_admin_token_the_cli_uses(tmp_path: Path) -> None:
    built = default_image.build_dir()
    if not (built / "vmlinuz").is_file():
        pytest.skip("the default image is not built (scripts/build-default-image.sh)")
    ports = {svc: free_port() for svc in ("api", "conductor", "scheduler", "compute")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROVER_")}
    env.update({"DROVER_IMAGE_DIR": str(built), "DROVER_API__LISTEN": f"127.0.0.1:{ports['api']}",
                "DROVER_API__CONDUCTOR": f"127.0.0.1:{ports['conductor']}",
                "DROVER_API__SCHEDULER": f"127.0.0.1:{ports['scheduler']}",
                "DROVER_CONDUCTOR__LISTEN": f"127.0.0.1:{ports['conductor']}",
                "DROVER_CONDUCTOR__SCHEDULER": f"127.0.0.1:{ports['scheduler']}",
                "DROVER_SCHEDULER__LISTEN": f"127.0.0.1:{ports['scheduler']}",
                "DROVER_COMPUTE__LISTEN": f"127.0.0.1:{ports['compute']}",
                "DROVER_COMPUTE__CONDUCTOR": f"127.0.0.1:{ports['conductor']}",
                "DROVER_COMPUTE__SCHEDULER": f"127.0.0.1:{ports['scheduler']}",
                **{f"DROVER_{svc.upper()}__METRICS_PORT": "0" for svc in ports}})
    up = subprocess.Popen([sys.executable, "-m", "drover", "up"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    try:
        token = tmp_path / ".drover" / "admin.token"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = up.stdout.readline() if up.stdout else ""
            if "Ctrl-C" in line or up.poll() is not None:
                break
        assert up.poll() is None, "drover up exited"
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / ".drover" / "auth" / "signing-key.pem").stat().st_mode) == 0o600
        cli_env = {**env, "DROVER_URL": f"127.0.0.1:{ports['api']}"}
        images = subprocess.run([sys.executable, "-m", "drover", "image", "list", "-f", "json"], cwd=tmp_path,
                                env=cli_env, capture_output=True, text=True, timeout=60)
        assert images.returncode == 0, images.stderr
        assert "drover-tiny" in {i["name"] for i in json.loads(images.stdout)}
        hosts = subprocess.run([sys.executable, "-m", "drover", "host", "list", "-f", "json"], cwd=tmp_path,
                               env=cli_env, capture_output=True, text=True, timeout=60)
        assert hosts.returncode == 0, hosts.stderr  # admin: the token is the admin's
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(30)
