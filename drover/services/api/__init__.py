"""ApiService: the public gRPC API (nova-api)."""
