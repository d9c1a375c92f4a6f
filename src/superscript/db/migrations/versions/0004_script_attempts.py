"""Script attempts: one row per start of a payment script, written before it starts.

Temporal's retry policy alone limited a key's attempts, and Temporal forgets (a workflow
terminated and deleted, a history past its retention): the ledger now keeps the count.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.String(128)


def upgrade() -> None:
    op.create_table(
        "script_attempts",
        sa.Column("script", ID, primary_key=True),
        sa.Column("order_id", ID, primary_key=True),
        sa.Column("attempt", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("workflow_id", sa.String(300), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("activity_id", sa.String(300), nullable=True),
        sa.Column("activity_attempt", sa.Integer, nullable=True),
        sa.Column("worker", sa.String(300), nullable=True),
        sa.Column(
            "started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("script_attempts")
