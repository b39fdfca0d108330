"""Who may call what on the internal services: the rule table, and the checks that apply it.

A caller's identity is its client certificate (checked against the drover CA during the TLS
handshake): the SPIFFE id ``spiffe://drover/<role>[/<agent>]`` gives its role, and a compute
agent's DNS names the hosts it owns (``drover.pki``). One server interceptor applies ``RULES``
(RPC → roles; anything not listed is refused) to every call; on the cast streams each cast is
checked against ``CAST_RULES`` by kind, and where a cast names a host (a compute's instance
updates) that host must be the sender's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import grpc

from drover import pki
from drover.services.common.casts import CastRefused

log = logging.getLogger(__name__)

API, CONDUCTOR, SCHEDULER, COMPUTE, OPERATOR = "api", "conductor", "scheduler", "compute", "operator"
ANY_ROLE = frozenset(pki.ROLES)

# RPC (full method name) → the roles that may call it. Not listed: refused.
RULES: dict[str, frozenset[str]] = {
    # The API casts build/delete; computes cast their instance updates (each cast checked below).
    "/drover.v1.ConductorService/StreamCasts": frozenset({API, COMPUTE}),
    # Every project's instance changes: only the API, which filters them per caller.
    "/drover.v1.ConductorService/WatchInstances": frozenset({API}),
    # Claims: placing and releasing them is the API's and the conductor's business.
    "/drover.v1.SchedulerService/SelectDestinations": frozenset({API, CONDUCTOR}),
    "/drover.v1.SchedulerService/SelectDestinationsBatch": frozenset({API, CONDUCTOR}),
    "/drover.v1.SchedulerService/ReleaseClaims": frozenset({API, CONDUCTOR}),
    # Read-only and claim-free: operators' tools too.
    "/drover.v1.SchedulerService/ExplainSelection": frozenset({API, CONDUCTOR, OPERATOR}),
    "/drover.v1.SchedulerService/ListHosts": frozenset({API, CONDUCTOR, OPERATOR}),
    # A compute reports its own hosts only (checked per report by the scheduler).
    "/drover.v1.SchedulerService/ReportHosts": frozenset({COMPUTE}),
    # Builds and terminates come from the conductor alone.
    "/drover.v1.ComputeService/StreamCasts": frozenset({CONDUCTOR}),
    "/drover.v1.ComputeService/GetConsoleOutput": frozenset({API}),
    "/grpc.health.v1.Health/Check": ANY_ROLE,
    "/grpc.health.v1.Health/Watch": ANY_ROLE,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": ANY_ROLE,
}

# Cast stream (service) → cast kind → the roles that may send it.
CAST_RULES: dict[str, dict[str, frozenset[str]]] = {
    "drover.v1.ConductorService": {
        "build_instances": frozenset({API}),
        "delete_instance": frozenset({API}),
        "instance_update": frozenset({COMPUTE}),
        "guest_inventory": frozenset({COMPUTE}),
    },
    "drover.v1.ComputeService": {
        "build_and_run_instance": frozenset({CONDUCTOR}),
        "terminate_instance": frozenset({CONDUCTOR}),
    },
}


@dataclass(frozen=True)
class Peer:
    """A caller as its certificate names it."""

    role: str
    # The compute agent's name (empty for the other roles).
    agent: str = ""
    # Hosts a compute agent owns: exact names, or a stem ending in "*" followed by a number.
    hosts: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.role}/{self.agent}" if self.agent else self.role

    def owns(self, host: str) -> bool:
        if not host or self.role != COMPUTE:
            return False
        for pattern in self.hosts:
            if pattern.endswith("*"):
                stem = pattern[:-1]
                if host.startswith(stem) and host[len(stem):].isdigit():
                    return True
            elif host == pattern:
                return True
        return False


def peer_from_auth_context(auth: dict[str, list[bytes]]) -> Peer | None:
    """The peer of a TLS call; None when the call has no verified drover identity."""
    if auth.get("transport_security_type") != [b"ssl"]:
        return None
    ids = auth.get("peer_spiffe_id") or []
    if len(ids) != 1:
        return None
    ident = ids[0].decode()
    if not ident.startswith(pki.SPIFFE_PREFIX):
        return None
    role, _, agent = ident[len(pki.SPIFFE_PREFIX):].partition("/")
    if role not in pki.ROLES or (role == COMPUTE) != bool(agent):
        return None
    hosts: tuple[str, ...] = ()
    if role == COMPUTE:
        own_name = pki.server_name(COMPUTE)
        hosts = tuple(h for h in (d.decode() for d in auth.get("peer_dns", [])) if h != own_name)
    return Peer(role, agent, hosts)


def peer_of(context: grpc.aio.ServicerContext) -> Peer | None:
    return peer_from_auth_context(context.auth_context())


def cast_gate(service: str, peer: Peer | None,
              hosts_of: dict[str, Callable[[Any], Collection[str]]] | None = None
              ) -> Callable[[Any], bool] | None:
    """Admission of each cast on one stream from ``peer``: raises CastRefused for a kind its role
    may not send; False (ignored, acknowledged, logged) for a cast naming a host the sender does
    not own (``hosts_of``: cast kind → the hosts a cast names). None (no checks) on a plaintext
    server."""
    if peer is None:
        return None
    rules = CAST_RULES[service]
    hosts_of = hosts_of or {}

    def admit(msg: Any) -> bool:
        kind = msg.WhichOneof("cast")
        if peer.role not in rules.get(kind, ()):
            raise CastRefused(f"{peer.key} may not cast {kind} to {service}")
        get_hosts = hosts_of.get(kind)
        if get_hosts is not None:
            foreign = [h for h in get_hosts(msg) if not peer.owns(h)]
            if foreign:
                log.warning("refused %s from %s: %r not among its hosts", kind, peer.key, foreign[:5])
                return False
        return True

    return admit


def allowed(method: str, peer: Peer | None) -> bool:
    return peer is not None and peer.role in RULES.get(method, ())


class PeerAuthInterceptor(grpc.aio.ServerInterceptor):
    """Applies ``RULES`` to every call of an mTLS server before the servicer sees it."""

    def __init__(self, rules: dict[str, frozenset[str]] | None = None) -> None:
        self.rules = RULES if rules is None else rules

    async def intercept_service(self, continuation: Callable[..., Any], details: Any) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method
        roles: Collection[str] = self.rules.get(method, ())

        async def check(context: grpc.aio.ServicerContext) -> None:
            peer = peer_of(context)
            if peer is None:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no drover client certificate")
            elif peer.role not in roles:
                log.warning("refused %s to %s", method, peer.key)
                await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                    f"{peer.key} may not call {method}")

        if handler.unary_unary or handler.stream_unary:
            fn = handler.unary_unary or handler.stream_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await check(context)
                return await fn(request, context)

            make = grpc.unary_unary_rpc_method_handler if handler.unary_unary else grpc.stream_unary_rpc_method_handler
            return make(unary, request_deserializer=handler.request_deserializer,
                           response_serializer=handler.response_serializer)
        sfn = handler.unary_stream or handler.stream_stream

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await check(context)
            async for item in sfn(request, context):
                yield item

        make_s = grpc.unary_stream_rpc_method_handler if handler.unary_stream else grpc.stream_stream_rpc_method_handler
        return make_s(streaming, request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)
