"""Ingestion: the shared validator, Tesla decoding and dead letters."""
