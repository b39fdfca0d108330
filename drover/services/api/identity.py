"""Who is calling: the identity ``edge.ApiEdge`` authenticated for the current ApiService call
(the servicer reads it with ``identity(context)``), and the finer policy checks on it."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

import grpc

from drover.auth.policy import Policy
from drover.services.common.errors import ApiError


@dataclass(frozen=True)
class Identity:
    project_id: str
    user_id: str
    roles: frozenset[str]
    request_id: str

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


CALLER: ContextVar[Identity] = ContextVar("drover_api_caller")


def identity(context: grpc.aio.ServicerContext) -> Identity:
    """The authenticated caller of the current RPC (set by ``edge.ApiEdge``)."""
    return CALLER.get()


def denied(action: str, policy: Policy) -> ApiError:
    return ApiError(grpc.StatusCode.PERMISSION_DENIED,
                    f"policy does not allow {action} to this caller (rule: {policy.rules[action]})")


def enforce(policy: Policy, who: Identity, action: str) -> None:
    """PERMISSION_DENIED unless the policy lets ``who`` do ``action`` (a finer action than the RPC)."""
    if not policy.allows(action, who.roles):
        raise denied(action, policy)
