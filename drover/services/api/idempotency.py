"""Client request tokens: CreateServer and DeleteServer that a client may retry safely.

A client that lost an answer (the API died, a deadline passed) cannot know whether its request
took effect. With a token (the request's ``client_token`` field or an ``idempotency-key``
metadata entry) it retries freely: the token is stored with the request's result in the same
transaction, and a retry with the same token and the same request gets that result back; the
same token with a different request is refused. Tokens are per project and kept ``TTL``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import grpc
from google.protobuf.message import Message
from sqlalchemy import Connection, delete, select
from sqlalchemy.orm import Session

from drover.services.common import metrics
from drover.services.common.errors import invalid_argument
from drover.services.common.group_commit import GroupCommit
from drover.store import models as m
from drover.store.tables import CLIENT_TOKENS

# Kept at least a day: a client retrying after a long outage still gets its original answer.
TTL = dt.timedelta(hours=24)
METADATA_KEY = "idempotency-key"


def token_of(request: Any, context: grpc.aio.ServicerContext) -> str:
    if request.client_token:
        return str(request.client_token).strip()
    for key, value in context.invocation_metadata() or ():
        if key == METADATA_KEY and isinstance(value, str):
            return value.strip()
    return ""


def digest(request: Message) -> str:
    """The request without its token, as bytes that are the same for the same request."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("client_token")  # type: ignore[arg-type]
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()


def find(c: Connection, project_id: str, token: str, rpc: str, request_hash: str) -> str | None:
    """The target (reservation or server id) of an earlier request with this token, or None;
    INVALID_ARGUMENT when the token was used for a different request."""
    row = c.execute(select(CLIENT_TOKENS).where(
        CLIENT_TOKENS.c.project_id == project_id, CLIENT_TOKENS.c.token == token,
        CLIENT_TOKENS.c.created_at >= m.utcnow() - TTL)).first()
    if row is None:
        return None
    if row.rpc != rpc or row.request_hash != request_hash:
        raise invalid_argument([("client_token", f"token {token!r} was already used for a different {row.rpc} "
                                                 f"request; use a new token for a new request")])
    metrics.IDEMPOTENT_HITS.labels(rpc).inc()
    return str(row.target_id)


def remember(db: GroupCommit, s: Session, project_id: str, token: str, rpc: str, request_hash: str,
             target_id: str) -> None:
    """Store the token with the current transaction (a concurrent twin fails on the primary key)."""
    s.connection().execute(delete(CLIENT_TOKENS).where(  # an expired use of the same token
        CLIENT_TOKENS.c.project_id == project_id, CLIENT_TOKENS.c.token == token,
        CLIENT_TOKENS.c.created_at < m.utcnow() - TTL))
    db.insert_later(CLIENT_TOKENS, [dict(project_id=project_id, token=token, rpc=rpc, request_hash=request_hash,
                                         target_id=target_id, created_at=m.utcnow())])
