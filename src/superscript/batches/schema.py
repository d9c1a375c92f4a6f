"""Batch tables: items live here, never whole in Temporal (payloads cap at 2 MB)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    func,
)

from superscript.db.metadata import ID, metadata

batches = Table(
    "batches",
    metadata,
    Column("batch_id", ID, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("script", ID, nullable=True),
    Column("total", Integer, nullable=False),
    Column("items_digest", String(64), nullable=False),
    Column("workflow_id", String(300), nullable=False),
    Column("status", String(16), nullable=False),
    # Counters move in the same transaction as the items they count.
    Column("succeeded", Integer, nullable=False, server_default="0"),
    Column("replayed", Integer, nullable=False, server_default="0"),
    Column("failed", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    # GET /batches, newest first, unfiltered or by status or kind.
    Index("ix_batches_created", "created_at", "batch_id"),
    Index("ix_batches_status", "status", "created_at", "batch_id"),
    Index("ix_batches_kind", "kind", "created_at", "batch_id"),
)

batch_items = Table(
    "batch_items",
    metadata,
    Column("batch_id", ID, primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("order_id", ID, nullable=False),
    Column("account_id", ID, nullable=True),
    Column("amount", BigInteger, nullable=True),
    Column("args", Text, nullable=True),
    Column("status", String(16), nullable=False),
    Column("outcome", String(32), nullable=True),
    Column("exit_code", Integer, nullable=True),
    Column("detail", Text, nullable=True),
    Index("ix_batch_items_status", "batch_id", "status", "seq"),
    # An order's history: every batch that carried it.
    Index("ix_batch_items_order", "order_id"),
)
