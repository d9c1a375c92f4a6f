"""Alembic environment: always run on a connection handed in by ``engine.migrate``."""

from __future__ import annotations

from alembic import context

import superscript.batches.schema
import superscript.db.identity
import superscript.ledger.schema
import superscript.scripts.schema  # noqa: F401
from superscript.db.metadata import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through superscript.db.migrate.migrate")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
