"""client request tokens (idempotent CreateServer and DeleteServer)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "client_tokens",
        sa.Column("project_id", sa.String(length=255), primary_key=True),
        sa.Column("token", sa.String(length=255), primary_key=True),
        sa.Column("rpc", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("target_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_client_tokens_created_at", "client_tokens", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_client_tokens_created_at", table_name="client_tokens")
    op.drop_table("client_tokens")
