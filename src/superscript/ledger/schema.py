"""Table definitions; the migrations under ``migrations/`` create exactly these."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    func,
)

metadata = MetaData()

ID = String(128)
# SQLite only auto-increments an INTEGER PRIMARY KEY.
SERIAL = BigInteger().with_variant(Integer(), "sqlite")

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
)

# The journal: one row for every change of a balance, idempotent or naive.
entries = Table(
    "entries",
    metadata,
    Column("entry_id", SERIAL, primary_key=True, autoincrement=True),
    Column("account_id", ID, nullable=False),
    Column("order_id", ID, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_entries_order_id", "order_id"),
    Index("ix_entries_account_id", "account_id"),
)

# One row (singleton = 1): the random UUID that names this ledger, created by migration
# 0005. A data dir records it on first use and refuses a ledger with another one.
ledger_identity = Table(
    "ledger_identity",
    metadata,
    Column("singleton", Integer, primary_key=True, autoincrement=False),
    Column("ledger_id", String(36), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("singleton = 1", name="ck_ledger_identity_one_row"),
)
