"""Micro-benchmark: what the API edge costs one call (token verification, policy, bounds).

    python -m benchmarks.auth

``cold``: a token seen for the first time (parse, ES256 signature, claims) — a client's first
call. ``cached``: the same token again (the verifier remembers verified tokens until they expire)
— every later call of that client. ``edge``: everything the edge does before a CreateServer
runs with a cached token (read the header, verify, apply the policy rule, check the request's bounds).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from drover.auth import keys, policy, tokens
from drover.config import AuthConfig
from drover.services.api import validation
from drover.services.api.edge import ApiEdge
from drover.v1 import api_pb2


def per_call(fn: object, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)  # type: ignore[operator]
    return (time.perf_counter() - t0) / n


def main() -> None:
    auth = AuthConfig()
    key = keys.ensure_signing_key(Path(tempfile.mkdtemp(prefix="drover-auth-bench-")))
    n = 5000
    toks = [tokens.issue(key, auth, project=f"p{i}", user="u", roles=["member"], ttl=3600) for i in range(n)]
    verifier = tokens.Verifier(auth, key, cache_size=1)  # every call misses the cache
    cold = per_call(lambda i: verifier.verify(toks[i]), n)
    warm_verifier = tokens.Verifier(auth, key)
    warm_verifier.verify(toks[0])
    cached = per_call(lambda i: warm_verifier.verify(toks[0]), 200_000)
    rules = policy.Policy()
    edge = ApiEdge(warm_verifier, rules)
    details = SimpleNamespace(invocation_metadata=(("authorization", f"Bearer {toks[0]}"),
                                                   ("user-agent", "grpc-python")),
                              method="/drover.v1.ApiService/CreateServer")
    request = api_pb2.CreateServerRequest(name="bench-1", flavor_ref="m1.tiny",
                                          image_ref="2d7c6a9e-58a8-4d5e-a0f4-0c3b1f3c9e11")

    async def edge_calls(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            p = await edge.principal(details)
            rules.allows("CreateServer", p.roles)
            validation.check_bounds(request)
        return (time.perf_counter() - t0) / n

    at_edge = asyncio.run(edge_calls(100_000))
    print(f"cold (first call of a token): {cold * 1e6:.1f} µs per call")
    print(f"cached (same token again):    {cached * 1e6:.2f} µs per call")
    print(f"edge, CreateServer, cached:   {at_edge * 1e6:.2f} µs per call")


if __name__ == "__main__":
    main()
