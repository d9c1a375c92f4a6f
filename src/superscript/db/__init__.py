"""The database layer every package shares: engines, metadata, migrations, identity."""
