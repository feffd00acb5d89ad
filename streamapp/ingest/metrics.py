"""Prometheus metrics of ingestion (default registry, `streamapp_` prefix)."""

from __future__ import annotations

from prometheus_client import Counter

MESSAGES = Counter(
    "streamapp_ingest_messages_total",
    "Input messages checked by the shared validator, by topic and result (valid/invalid).",
    ["topic", "result"],
)
NORMALISED = Counter(
    "streamapp_tesla_normalised_total",
    "Tesla fleet-telemetry records republished as normalised telemetry.",
)
