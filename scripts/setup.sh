#!/usr/bin/env bash
# Set up drover on a fresh Debian 12 machine (root): system packages, libvirt daemons,
# the Python package with its Rust scheduler core, and the default guest image.
# Idempotent; safe to run again.
#   SKIP_LIBVIRT=1   do not install/start libvirt + QEMU (the fake driver needs neither)
#   SKIP_POSTGRES=1  do not install/start PostgreSQL (the embedded SQLite store needs none; tests use it)
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "setup: $*" >&2; }

if [[ "${SKIP_LIBVIRT:-0}" != 1 ]]; then
  log "libvirt + QEMU"
  SKIP_PIP=1 bash scripts/setup-libvirt.sh
fi

if [[ "${SKIP_POSTGRES:-0}" != 1 ]]; then
  log "PostgreSQL (for the tests that run the mesh on it)"
  if ! dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q "install ok installed"; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >/dev/null
  fi
  ver=$(ls /usr/lib/postgresql | sort -V | tail -n1)
  if ! pg_lsclusters -h | awk '{print $4}' | grep -q online; then
    pg_ctlcluster "$ver" main start
  fi
  su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='drover'\"" | grep -q 1 ||
    su postgres -c "psql -qc \"CREATE ROLE drover LOGIN PASSWORD 'drover' CREATEDB\""
fi

if ! command -v cargo >/dev/null; then
  log "cargo is missing: install Rust (https://rustup.rs) first" ; exit 1
fi
export PATH="$HOME/.cargo/bin:$PATH"

log "python package (builds the Rust scheduler core with maturin)"
extras="dev,postgres"
if [[ "${SKIP_LIBVIRT:-0}" != 1 ]]; then extras="$extras,libvirt"; fi
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e ".[${extras}]"
if command -v pyenv >/dev/null; then pyenv rehash; fi  # put the new `drover` command on PATH

if ! command -v grpcurl >/dev/null && [[ ! -x "$HOME/go/bin/grpcurl" ]]; then
  log "grpcurl (Go module proxy), for reflection tests"
  PATH="/usr/local/go/bin:$PATH" go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4
fi

log "client tools (protoc-gen-go, protoc-gen-go-grpc, npm ci): the Go/TypeScript code generation and the clients' tests"
bash scripts/install-client-tools.sh

log "default guest image (Debian cloud kernel + busybox initramfs)"
bash scripts/build-default-image.sh >/dev/null

log "store"
python3 -m drover db upgrade >/dev/null
log "done"
