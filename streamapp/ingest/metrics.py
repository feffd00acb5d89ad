"""Prometheus metrics of ingestion (default registry, `streamapp_` prefix)."""

from __future__ import annotations

from prometheus_client import Counter

MESSAGES = Counter(
    "streamapp_ingest_messages_total",
    "Input messages checked by the shared validator, by topic and result (valid/invalid).",
    ["topic", "result"],
)
DEAD_LETTERS = Counter(
    "streamapp_dead_letters_total",
    "Messages written to a dead-letter topic, by source topic and reason kind.",
    ["topic", "reason"],
)
NORMALISED = Counter(
    "streamapp_tesla_normalised_total",
    "Tesla fleet-telemetry records republished as normalised telemetry.",
)


def reason_kind(reason: str) -> str:
    """A bounded label for a free-text reason: its words before any detail."""
    head = reason.split(":", 1)[0]
    return " ".join(head.split()[:3])[:40]
