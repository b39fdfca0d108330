"""Micro-benchmark: what authenticating one API call costs (token verification at the edge).

    python -m benchmarks.auth

``cold``: a token seen for the first time (parse, ES256 signature, claims) — a client's first
call. ``cached``: the same token again (the verifier remembers verified tokens until they expire)
— every later call of that client.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from drover.auth import keys, tokens
from drover.config import AuthConfig


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
    print(f"cold (first call of a token): {cold * 1e6:.1f} µs per call")
    print(f"cached (same token again):    {cached * 1e6:.2f} µs per call")


if __name__ == "__main__":
    main()
