"""Indexes for the list routes (keyset pages stay fast at a million rows) and the
journal's ``balance_after``.

Every list is read newest (or oldest) first along one of these indexes, a filter's column
first, so a page is one range scan whatever the table's size. ``entries.balance_after`` is
written with each entry from now on; the rows written before are filled in here, from the
account's balance now and the entries after each one (every balance change is journaled).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (index, table, columns): each list's filter first, then its order and tie-break.
INDEXES = [
    ("ix_entries_account_entry", "entries", ["account_id", "entry_id"]),
    ("ix_fee_outcomes_decided", "fee_outcomes", ["decided_at", "order_id"]),
    ("ix_fee_outcomes_account", "fee_outcomes", ["account_id", "decided_at", "order_id"]),
    ("ix_fee_outcomes_status", "fee_outcomes", ["status", "decided_at", "order_id"]),
    ("ix_fee_outcomes_decider", "fee_outcomes", ["workflow_id", "decided_at", "order_id"]),
    ("ix_batches_created", "batches", ["created_at", "batch_id"]),
    ("ix_batches_status", "batches", ["status", "created_at", "batch_id"]),
    ("ix_batches_kind", "batches", ["kind", "created_at", "batch_id"]),
    ("ix_batch_items_order", "batch_items", ["order_id"]),
    ("ix_script_runs_decided", "script_runs", ["script", "decided_at", "order_id"]),
    ("ix_script_runs_status", "script_runs", ["script", "status", "decided_at", "order_id"]),
    ("ix_script_runs_order", "script_runs", ["order_id"]),
]

# Each entry's balance after it: the balance now plus what every later entry of its
# account took (one window over the journal: linear, not a sum per row).
BACKFILL = """
UPDATE entries SET balance_after = later.balance_after
FROM (
    SELECT e.entry_id,
           a.balance + COALESCE(SUM(e.amount) OVER (
               PARTITION BY e.account_id ORDER BY e.entry_id DESC
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
           ), 0) AS balance_after
    FROM entries AS e JOIN accounts AS a ON a.account_id = e.account_id
) AS later
WHERE entries.entry_id = later.entry_id AND entries.balance_after IS NULL
"""


def upgrade() -> None:
    op.add_column("entries", sa.Column("balance_after", sa.BigInteger, nullable=True))
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)
    # (account_id, entry_id) serves every use of (account_id) alone: one index less to
    # write with every entry.
    op.drop_index("ix_entries_account_id", table_name="entries")
    op.execute(BACKFILL)


def downgrade() -> None:
    op.create_index("ix_entries_account_id", "entries", ["account_id"])
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("entries") as batch:
        batch.drop_column("balance_after")
