"""Generated protobuf and gRPC code for drover.v1 (see scripts/gen-protos.sh)."""
