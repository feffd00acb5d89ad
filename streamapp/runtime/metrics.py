"""The worker's Faust-level traffic counters, fed from two sides.

Faust's sensor callbacks (`streamapp.observability.faust_metrics.StreamappSensor`)
see what goes through Faust's own consumer callback (the tables' changelogs), producer
and tables. The batch routes that feed every agent, bulk sends and batched table access
of `streamapp.runtime` bypass those callbacks, so they count the same events here
themselves, in bulk: otherwise the dashboards would show no agent's traffic.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

MESSAGES_RECEIVED = Counter(
    "streamapp_faust_messages_received_total",
    "Messages received by the worker's consumer, per topic.",
    ["topic"],
)

EVENTS = Counter(
    "streamapp_faust_events_total",
    "Messages delivered to agents (Faust streams and batch routes), per topic.",
    ["topic"],
)

MESSAGES_SENT = Counter(
    "streamapp_faust_messages_sent_total",
    "Messages acknowledged by the broker after a send (single or bulk), per topic.",
    ["topic"],
)

SEND_SECONDS = Histogram(
    "streamapp_faust_send_latency_seconds",
    "Time from a send being buffered to the broker's acknowledgement.",
    buckets=LATENCY_BUCKETS,
)

TABLE_OPERATIONS = Counter(
    "streamapp_faust_table_operations_total",
    "Table reads, writes and deletes, per table.",
    ["table", "operation"],
)
