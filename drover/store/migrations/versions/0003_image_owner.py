"""image owner and visibility

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 05:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=255), nullable=False, server_default=""))
        batch.add_column(sa.Column("visibility", sa.String(length=16), nullable=False, server_default="public"))


def downgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.drop_column("visibility")
        batch.drop_column("owner")
