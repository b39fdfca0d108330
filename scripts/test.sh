#!/usr/bin/env bash
# drover's whole test run: generated-code freshness, lint, types, Rust tests, pytest.
# Run scripts/setup.sh first (the README's test command does both).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
step() { echo; echo "==> $*"; }

step "generated protobuf code is fresh"
bash scripts/gen-protos.sh --check
step "ruff"
python3 -m ruff check .
step "mypy"
python3 -m mypy
step "cargo clippy"
cargo clippy --quiet --all-targets -- -D warnings
step "cargo test"
cargo test --quiet
step "stubs match the Rust module (mypy stubtest)"
python3 -m mypy.stubtest drover.scheduler_core
step "the contract (buf lint, buf breaking) and the Go, TypeScript and Rust clients against a real mesh"
bash scripts/test-clients.sh
step "pytest"
if [[ "${SKIP_LIBVIRT:-0}" != 1 ]]; then
  export DROVER_REQUIRE_LIBVIRT=1  # libvirt was set up: its tests must run, not skip
fi
if [[ "${SKIP_POSTGRES:-0}" != 1 ]]; then
  export DROVER_TEST_POSTGRES_URL="${DROVER_TEST_POSTGRES_URL:-postgresql+psycopg://drover:drover@127.0.0.1/postgres}"
  export DROVER_REQUIRE_POSTGRES=1
fi
python3 -m pytest -q -p no:cacheprovider "$@"
