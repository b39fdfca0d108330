#!/usr/bin/env bash
# What generating and testing the Go, TypeScript and Rust clients needs, from package
# registries, pinned: protoc-gen-go and protoc-gen-go-grpc (Go module proxy, into $(go env
# GOPATH)/bin), buf + protoc-gen-es + the TypeScript client's packages (npm ci in clients/ts).
# Idempotent: skips what is already installed at the pinned version.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
PROTOC_GEN_GO=v1.36.12
PROTOC_GEN_GO_GRPC=v1.6.1
gobin=$(go env GOPATH)/bin

installed_version() { [[ -x $gobin/$1 ]] && "$gobin/$1" --version 2>/dev/null | awk '{print $NF}'; }
[[ $(installed_version protoc-gen-go) == "$PROTOC_GEN_GO" ]] ||
  go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO"
[[ $(installed_version protoc-gen-go-grpc) == "${PROTOC_GEN_GO_GRPC#v}" ]] ||
  go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC"

# npm ci when node_modules is missing or older than the lock file.
if [[ ! -e clients/ts/node_modules/.package-lock.json ||
      clients/ts/package-lock.json -nt clients/ts/node_modules/.package-lock.json ]]; then
  npm ci --prefix clients/ts --no-audit --no-fund --loglevel=error
fi
