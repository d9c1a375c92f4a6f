"""The ledger's tables: accounts, per-order outcomes, the journal (made by ``db/migrations``)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    String,
    Table,
    func,
)

from superscript.db.metadata import ID, SERIAL, metadata

accounts = Table(
    "accounts",
    metadata,
    Column("account_id", ID, primary_key=True),
    Column("balance", BigInteger, nullable=False),
    Column("opening_balance", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("balance >= 0", name="ck_accounts_balance_nonnegative"),
)

# One row per order, written in the same transaction as the balance change it decided.
fee_outcomes = Table(
    "fee_outcomes",
    metadata,
    Column("order_id", ID, primary_key=True),
    Column("account_id", ID, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("status", String(32), nullable=False),
    Column("balance_after", BigInteger, nullable=True),
    Column("balance_seen", BigInteger, nullable=True),
    Column("workflow_id", String(300), nullable=False),
    Column("run_id", String(64), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # GET /orders, newest first, unfiltered or by account, status or deciding workflow.
    Index("ix_fee_outcomes_decided", "decided_at", "order_id"),
    Index("ix_fee_outcomes_account", "account_id", "decided_at", "order_id"),
    Index("ix_fee_outcomes_status", "status", "decided_at", "order_id"),
    Index("ix_fee_outcomes_decider", "workflow_id", "decided_at", "order_id"),
)

# The journal: one row for every change of a balance, idempotent or naive. ``amount`` is
# what the change took from the balance (the API shows it signed: a charge is negative).
entries = Table(
    "entries",
    metadata,
    Column("entry_id", SERIAL, primary_key=True, autoincrement=True),
    Column("account_id", ID, nullable=False),
    Column("order_id", ID, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The account's balance once this entry was applied (migration 0006 filled older rows).
    Column("balance_after", BigInteger, nullable=True),
    Index("ix_entries_order_id", "order_id"),
    # An account's journal in order (migration 0006; it replaced one on account_id alone).
    Index("ix_entries_account_entry", "account_id", "entry_id"),
)
