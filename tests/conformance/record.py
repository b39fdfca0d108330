"""Record conformance cases: generate fleets, run Nova's own scheduler code on them, save both.

``python -m tests.conformance.record --hosts 100,1000,10000,50000`` writes
``tests/conformance/cases/hosts-N.json.gz`` (the case and Nova's answers) and prints how drover
agrees with them. Nova runs in its own virtualenv (``--nova-python``, default
``.venv-nova/bin/python`` at the repository root; see README.md for how to create it), never in drover's.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .compare import CASES, check
from .drover_run import ENGINES
from .fleet import generate_case

NOVA_VERSION = "34.0.0"


def record(n_hosts: int, seed: int, n_requests: int, nova_python: str) -> Path:
    case = generate_case(n_hosts, seed, n_requests)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(case, f)
    try:
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]), PYTHONWARNINGS="ignore")
        out = subprocess.run(
            [nova_python, "-m", "tests.conformance.nova_run", f.name],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        ).stdout
    finally:
        os.unlink(f.name)
    path = CASES / f"hosts-{n_hosts}.json.gz"
    CASES.mkdir(exist_ok=True)
    partial = path.with_suffix(".partial")
    with gzip.open(partial, "wt", compresslevel=9) as g:
        json.dump({"nova_version": NOVA_VERSION, "case": case, "nova": json.loads(out)}, g, separators=(",", ":"))
    partial.replace(path)  # a case is in cases/ whole or not at all
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--hosts", default="100,1000,10000,50000", help="comma-separated fleet sizes")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--nova-python", default=str(Path(__file__).resolve().parents[2] / ".venv-nova" / "bin" / "python"))
    p.add_argument("--engine", choices=sorted(ENGINES), default="core", help="the drover side to compare")
    args = p.parse_args()
    for n in (int(x) for x in args.hosts.split(",")):
        path = record(n, args.seed, args.requests, args.nova_python)
        print(check(path, args.engine).line(), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
