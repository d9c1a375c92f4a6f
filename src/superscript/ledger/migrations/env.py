"""Alembic environment: always run on a connection handed in by ``engine.migrate``."""

from __future__ import annotations

from alembic import context

from superscript.ledger.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through superscript.ledger.engine.migrate")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
