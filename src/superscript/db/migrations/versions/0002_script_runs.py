"""Script runs: the args of each (script, order_id) and its result once decided.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = sa.String(128)


def upgrade() -> None:
    op.create_table(
        "script_runs",
        sa.Column("script", ID, primary_key=True),
        sa.Column("order_id", ID, primary_key=True),
        sa.Column("args", sa.Text, nullable=False),
        sa.Column("args_hash", sa.String(64), nullable=False),
        sa.Column("workflow_id", sa.String(300), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", sa.Text, nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("script_runs")
