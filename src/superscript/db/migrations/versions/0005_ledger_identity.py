"""The ledger's identity: one random UUID that lives in the database itself.

A data dir records the identity of the ledger it was first used with, so that its
embedded Temporal history never answers for another ledger (a URL alone can't tell: the
same database has many URLs, and one URL may point at a fresh database tomorrow).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "ledger_identity",
        sa.Column("singleton", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ledger_id", sa.String(36), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("singleton = 1", name="ck_ledger_identity_one_row"),
    )
    # Created with the table, in the migration's transaction: every migrated ledger has
    # exactly one identity, and concurrent starters (serialised by migrate) see the same.
    op.bulk_insert(table, [{"singleton": 1, "ledger_id": str(uuid.uuid4())}])


def downgrade() -> None:
    op.drop_table("ledger_identity")
