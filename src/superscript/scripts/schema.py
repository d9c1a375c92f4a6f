"""Script tables: each key's record (args, result) and each start of its script, ever."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, Text, func

from superscript.db.metadata import ID, metadata

# Created by migration 0002_script_runs; on the ledger's metadata so Alembic sees it.
script_runs = Table(
    "script_runs",
    metadata,
    Column("script", ID, primary_key=True),
    Column("order_id", ID, primary_key=True),
    Column("args", Text, nullable=False),
    Column("args_hash", String(64), nullable=False),
    Column("workflow_id", String(300), nullable=False),
    Column("status", String(16), nullable=False),
    Column("result", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    # GET /scripts/{name}/runs, newest first, by status; an order's history by order_id.
    Index("ix_script_runs_decided", "script", "decided_at", "order_id"),
    Index("ix_script_runs_status", "script", "status", "decided_at", "order_id"),
    Index("ix_script_runs_order", "order_id"),
)

# Created by migration 0004_script_attempts: one row per start of the script, ever.
script_attempts = Table(
    "script_attempts",
    metadata,
    Column("script", ID, primary_key=True),
    Column("order_id", ID, primary_key=True),
    Column("attempt", Integer, primary_key=True, autoincrement=False),
    # Who started it, for an operator: the workflow run, the activity and the worker.
    Column("workflow_id", String(300), nullable=True),
    Column("run_id", String(64), nullable=True),
    Column("activity_id", String(300), nullable=True),
    Column("activity_attempt", Integer, nullable=True),
    Column("worker", String(300), nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
