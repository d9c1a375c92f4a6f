"""Batches and their items, with per-batch counters.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.String(128)


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("batch_id", ID, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("script", ID, nullable=True),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("items_digest", sa.String(64), nullable=False),
        sa.Column("workflow_id", sa.String(300), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("succeeded", sa.Integer, nullable=False, server_default="0"),
        sa.Column("replayed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "batch_items",
        sa.Column("batch_id", ID, primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("order_id", ID, nullable=False),
        sa.Column("account_id", ID, nullable=True),
        sa.Column("amount", sa.BigInteger, nullable=True),
        sa.Column("args", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("exit_code", sa.Integer, nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
    )
    op.create_index("ix_batch_items_status", "batch_items", ["batch_id", "status", "seq"])


def downgrade() -> None:
    op.drop_table("batch_items")
    op.drop_table("batches")
