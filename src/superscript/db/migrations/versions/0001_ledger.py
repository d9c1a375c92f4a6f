"""Accounts, per-order fee outcomes and the journal of balance changes.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(128)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("account_id", ID, primary_key=True),
        sa.Column("balance", sa.BigInteger, nullable=False),
        sa.Column("opening_balance", sa.BigInteger, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("balance >= 0", name="ck_accounts_balance_nonnegative"),
    )
    op.create_table(
        "fee_outcomes",
        sa.Column("order_id", ID, primary_key=True),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("balance_after", sa.BigInteger, nullable=True),
        sa.Column("balance_seen", sa.BigInteger, nullable=True),
        sa.Column("workflow_id", sa.String(300), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column(
            "decided_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "entries",
        sa.Column(
            "entry_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("order_id", ID, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("ix_entries_order_id", "entries", ["order_id"])
    op.create_index("ix_entries_account_id", "entries", ["account_id"])


def downgrade() -> None:
    op.drop_table("entries")
    op.drop_table("fee_outcomes")
    op.drop_table("accounts")
