"""The one SQLAlchemy ``MetaData`` every table joins, the column types and limits they share."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, MetaData, String

metadata = MetaData()

ID = String(128)
# SQLite only auto-increments an INTEGER PRIMARY KEY.
SERIAL = BigInteger().with_variant(Integer(), "sqlite")

# Bound parameters per IN (...) list: well inside SQLite's and PostgreSQL's limits.
IN_LIST_SIZE = 500
