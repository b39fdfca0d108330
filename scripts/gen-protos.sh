#!/usr/bin/env bash
# Generate Python code and mypy stubs from protos/ into drover/v1/.
# Usage: scripts/gen-protos.sh [--check]   (--check: fail if the checked-in code is stale)
set -euo pipefail
cd "$(dirname "$0")/.."
out=.
if [[ "${1:-}" == "--check" ]]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
python -m grpc_tools.protoc -I protos \
  --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out" \
  protos/drover/v1/*.proto
if [[ "${1:-}" == "--check" ]]; then
  stale=0
  for f in "$out"/drover/v1/*; do
    rel=drover/v1/$(basename "$f")
    if ! cmp -s "$f" "$rel"; then echo "stale generated file: $rel" >&2; stale=1; fi
  done
  for f in drover/v1/*_pb2*.py drover/v1/*_pb2*.pyi; do
    [[ -e "$out/$f" ]] || { echo "generated file without a proto: $f" >&2; stale=1; }
  done
  if (( stale )); then echo "run scripts/gen-protos.sh and commit the result" >&2; exit 1; fi
  echo "generated protobuf code is fresh"
fi
# The Go and TypeScript clients' code (buf), checked the same way.
bash scripts/gen-clients.sh "$@"
