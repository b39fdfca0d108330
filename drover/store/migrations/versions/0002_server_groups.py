"""server groups

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "server_groups",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("policy", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_server_groups_project_id"), "server_groups", ["project_id"], unique=False)
    op.create_table(
        "server_group_members",
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["server_groups.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("group_id", "instance_id"),
        sa.UniqueConstraint("instance_id"),
    )


def downgrade() -> None:
    op.drop_table("server_group_members")
    op.drop_index(op.f("ix_server_groups_project_id"), table_name="server_groups")
    op.drop_table("server_groups")
