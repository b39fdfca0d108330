"""Who is calling: project, user and roles from request metadata (as Keystone would pass them)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class Identity:
    project_id: str
    user_id: str
    request_id: str
    is_admin: bool


def identity(context: grpc.aio.ServicerContext) -> Identity:
    md = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
    project = md.get("x-project-id", "admin")
    roles = {r.strip() for r in md.get("x-roles", "").split(",") if r.strip()}
    return Identity(
        project_id=project,
        user_id=md.get("x-user-id", "admin"),
        request_id=md.get("x-request-id") or f"req-{uuid.uuid4()}",
        is_admin=project == "admin" or "admin" in roles,
    )
