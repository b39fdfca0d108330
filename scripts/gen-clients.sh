#!/usr/bin/env bash
# Generate the Go and TypeScript clients' code from protos/ with buf (buf.gen.yaml at the root,
# plus clients/ts/buf.gen.yaml for the google.rpc error details). The Rust client generates its
# code at build time (clients/rust/build.rs), so nothing of it is checked in.
# Usage: scripts/gen-clients.sh [--check]   (--check: fail if the checked-in code is stale)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-client-tools.sh
export PATH="/usr/local/go/bin:$PATH"
export PATH="$(go env GOPATH)/bin:$PATH"   # protoc-gen-go, protoc-gen-go-grpc
buf=$PWD/clients/ts/node_modules/.bin/buf
generated=(clients/go/gen clients/ts/src/gen)

out=.
if [[ "${1:-}" == "--check" ]]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
$buf generate -o "$out"
(cd clients/ts && $buf generate --template buf.gen.yaml -o "$(cd "$OLDPWD" && realpath "$out")/clients/ts")

if [[ "${1:-}" == "--check" ]]; then
  stale=0
  for dir in "${generated[@]}"; do
    if ! diff -r -q "$out/$dir" "$dir"; then stale=1; fi
  done
  if (( stale )); then echo "run scripts/gen-protos.sh and commit the result" >&2; exit 1; fi
  echo "generated client code (Go, TypeScript) is fresh"
fi
