"""Batches: many orders stored in the database and worked through by one workflow."""
