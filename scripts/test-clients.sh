#!/usr/bin/env bash
# The contract and its Go, TypeScript and Rust clients: buf lint + breaking, then each client's
# lint and tests; the tests start a real mesh on loopback (clients/testmesh.py, fake driver).
# Installs what it needs from package registries (scripts/install-client-tools.sh: protoc-gen-go*,
# npm ci; cargo fetches the Rust crates). The generated code's freshness is gen-protos.sh --check.
# Needs: Go (/usr/local/go), Node >= 20 with npm, cargo, and drover installed (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$HOME/.cargo/bin:$PATH"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # the mesh runs this tree's drover
SECONDS=0
step() { echo; echo "==> [${SECONDS}s] $*"; }

step "client tools (go install of the protoc plugins, npm ci)"
bash scripts/install-client-tools.sh
step "contract: buf lint, buf breaking"
bash scripts/check-contract.sh

step "go: gofmt, vet, test"
(
  cd clients/go
  unformatted=$(gofmt -l drover examples)
  [[ -z $unformatted ]] || { echo "gofmt needed: $unformatted" >&2; exit 1; }
  go vet ./...
  go test -count=1 ./...
)

step "typescript: strict tsc, node:test"
(cd clients/ts && npm test --silent)

step "rust: fmt, clippy, test"
(
  cd clients/rust
  cargo fmt --check
  cargo clippy --quiet --locked --all-targets -- -D warnings
  cargo test --quiet --locked
)
step "clients: all passed"
