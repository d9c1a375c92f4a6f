"""The HTTP API: a thin FastAPI shell over the ledger and the Temporal client."""
