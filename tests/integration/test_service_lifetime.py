"""Services started by a LocalMesh die with the process that started them, even one killed hard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

STARTER = """
import sys, time
from pathlib import Path
from drover.localmesh import LocalMesh
mesh = LocalMesh.on_free_ports(Path(sys.argv[1]))
mesh.prepare_store()
mesh.start_service("scheduler")
print(mesh.procs["scheduler"].pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is gone for our purpose
        return f.read().split(")")[-1].split()[0] != "Z"


def test_a_service_dies_when_its_starter_is_killed(tmp_path: Path) -> None:
    starter = subprocess.Popen([sys.executable, "-c", STARTER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert starter.stdout is not None
        service = int(starter.stdout.readline())
        assert _alive(service)
        starter.send_signal(signal.SIGKILL)  # no cleanup code runs in the starter
        starter.wait(10)
        deadline = time.monotonic() + 15
        while _alive(service) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(service), "the scheduler outlived the process that started it"
    finally:
        starter.kill()
