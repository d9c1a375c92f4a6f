"""The one SQLAlchemy ``MetaData`` every table joins, and the column types they share."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, MetaData, String

metadata = MetaData()

ID = String(128)
# SQLite only auto-increments an INTEGER PRIMARY KEY.
SERIAL = BigInteger().with_variant(Integer(), "sqlite")
