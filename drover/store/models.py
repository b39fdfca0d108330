"""The tables. Names and columns follow Nova's where Nova has one."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Flavor(Base):
    __tablename__ = "flavors"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(BigInteger)
    root_gb: Mapped[int] = mapped_column(BigInteger, default=0)
    ephemeral_gb: Mapped[int] = mapped_column(BigInteger, default=0)
    swap_mb: Mapped[int] = mapped_column(BigInteger, default=0)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    extra_specs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Image(Base):
    __tablename__ = "images"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    disk_format: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    initrd_path: Mapped[str] = mapped_column(Text, default="")
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    checksum_sha256: Mapped[str] = mapped_column(String(64), default="")
    min_disk_gb: Mapped[int] = mapped_column(BigInteger, default=0)
    min_ram_mb: Mapped[int] = mapped_column(BigInteger, default=0)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # The project that uploaded it ("" for images an admin registered from the API host), and
    # who sees it: "public" (every project) or "private" (its owner; admins).
    owner: Mapped[str] = mapped_column(String(255), default="", server_default="")
    visibility: Mapped[str] = mapped_column(String(16), default="public", server_default="public")


class Network(Base):
    __tablename__ = "networks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    cidr: Mapped[str] = mapped_column(String(64))
    cidr_v6: Mapped[str] = mapped_column(String(64), default="")
    # Next host offset to hand out (simple sequential IPAM).
    next_offset: Mapped[int] = mapped_column(BigInteger, default=2)


class Instance(Base):
    __tablename__ = "instances"
    __table_args__ = (
        Index("ix_instances_project_created", "project_id", "created_at"),
        Index("ix_instances_vm_state", "vm_state"),
        Index("ix_instances_host", "host"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    project_id: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(String(255))
    reservation_id: Mapped[str] = mapped_column(String(255), default="")
    flavor_id: Mapped[str] = mapped_column(String(255))
    image_id: Mapped[str] = mapped_column(String(36))
    # The flavor's size, copied at create time as Nova embeds it in the instance.
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(BigInteger)
    root_gb: Mapped[int] = mapped_column(BigInteger)
    ephemeral_gb: Mapped[int] = mapped_column(BigInteger, default=0)
    swap_mb: Mapped[int] = mapped_column(BigInteger, default=0)
    vm_state: Mapped[str] = mapped_column(String(32))
    task_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    power_state: Mapped[int] = mapped_column(Integer, default=0)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    node: Mapped[str | None] = mapped_column(String(255), nullable=True)
    availability_zone: Mapped[str] = mapped_column(String(255), default="")
    access_ip_v4: Mapped[str] = mapped_column(String(64), default="")
    access_ip_v6: Mapped[str] = mapped_column(String(64), default="")
    key_name: Mapped[str] = mapped_column(String(255), default="")
    requested_networks: Mapped[list[Any]] = mapped_column(JSON, default=list)
    addresses: Mapped[list[Any]] = mapped_column(JSON, default=list)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    scheduler_hints: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fault_code: Mapped[int] = mapped_column(Integer, default=0)
    fault_message: Mapped[str] = mapped_column(Text, default="")
    fault_details: Mapped[str] = mapped_column(Text, default="")
    fault_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # The scheduler's explanation (JSON of drover.v1.Explanation) when no host was found.
    scheduler_explanation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    build_attempts: Mapped[int] = mapped_column(Integer, default=0)
    revision: Mapped[int] = mapped_column(BigInteger, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    launched_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    terminated_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)

    actions: Mapped[list[InstanceAction]] = relationship(
        back_populates="instance", order_by="InstanceAction.id", cascade="all, delete-orphan"
    )


class InstanceAction(Base):
    __tablename__ = "instance_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[str] = mapped_column(String(255), default="")
    user_id: Mapped[str] = mapped_column(String(255), default="")
    project_id: Mapped[str] = mapped_column(String(255), default="")
    start_time: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finish_time: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")

    instance: Mapped[Instance] = relationship(back_populates="actions")
    events: Mapped[list[InstanceActionEvent]] = relationship(
        back_populates="action", order_by="InstanceActionEvent.id", cascade="all, delete-orphan"
    )


class InstanceActionEvent(Base):
    __tablename__ = "instance_actions_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("instance_actions.id"), index=True)
    event: Mapped[str] = mapped_column(String(255))
    start_time: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finish_time: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    result: Mapped[str] = mapped_column(String(32), default="")
    details: Mapped[str] = mapped_column(Text, default="")
    host: Mapped[str] = mapped_column(String(255), default="")

    action: Mapped[InstanceAction] = relationship(back_populates="events")


class FixedIp(Base):
    """One allocated address (simple IPAM: the unique key makes double allocation impossible)."""

    __tablename__ = "fixed_ips"

    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"))
    instance_id: Mapped[str] = mapped_column(String(36), index=True)


class ServerGroup(Base):
    """Nova's instance group: a policy over where its members may run."""

    __tablename__ = "server_groups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    policy: Mapped[str] = mapped_column(String(32))
    # Nova's rules {"max_server_per_host": N} of an anti-affinity group (None: Nova's default, 1)
    max_server_per_host: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    project_id: Mapped[str] = mapped_column(String(255), index=True)
    user_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ServerGroupMember(Base):
    __tablename__ = "server_group_members"

    group_id: Mapped[str] = mapped_column(ForeignKey("server_groups.id", ondelete="CASCADE"), primary_key=True)
    # One group per instance, as in Nova.
    instance_id: Mapped[str] = mapped_column(String(36), primary_key=True, unique=True)


class ClientToken(Base):
    """A client's request token (idempotent CreateServer / DeleteServer), kept for a day or more."""

    __tablename__ = "client_tokens"

    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    token: Mapped[str] = mapped_column(String(255), primary_key=True)
    rpc: Mapped[str] = mapped_column(String(64))
    # SHA-256 of the request without its token: the same token with another request is refused.
    request_hash: Mapped[str] = mapped_column(String(64))
    # CreateServer: the reservation; DeleteServer: the server.
    target_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
