"""Prometheus metrics of feature extraction (default registry, `streamapp_` prefix)."""

from __future__ import annotations

import time
from typing import Any

from faust.sensors import Sensor
from prometheus_client import Counter, Gauge, Histogram

RECORDS = Counter(
    "streamapp_feature_records_total",
    "Telemetry records handled by the feature agent, by outcome "
    "(applied, replayed, rejected, forwarded, invalid).",
    ["outcome"],
)
WINDOWS_OPEN = Gauge(
    "streamapp_feature_windows_open",
    "Windows holding data and not closed yet, over the assets this worker has processed.",
)
WINDOWS_EMITTED = Counter(
    "streamapp_feature_windows_emitted_total",
    "Closed windows published to extracted-features (re-emissions after a replay included).",
)
LATE_EVENTS = Counter(
    "streamapp_feature_late_events_total",
    "Telemetry records that arrived after their window closed, sent to the DLQ as `late`.",
)
ASSETS_EXPIRED = Counter(
    "streamapp_feature_assets_expired_total",
    "Assets silent for the idle timeout: their last windows emitted, their state deleted.",
)
REPLAYED_EVENTS = Counter(
    "streamapp_feature_replayed_events_total",
    "Redelivered records skipped because the asset state had already applied their offset.",
)
FEATURE_LATENCY = Histogram(
    "streamapp_feature_latency_seconds",
    "From the Kafka timestamp of the record that closed a window to its emission.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
TABLE_RECOVERY = Histogram(
    "streamapp_table_recovery_seconds",
    "From a rebalance's new assignment to tables recovered and streams resumed.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)


class RecoverySensor(Sensor):
    """Times Faust's changelog recovery after each rebalance."""

    def on_rebalance_return(self, app: Any, state: dict) -> None:
        state["streamapp_assigned_at"] = time.monotonic()

    def on_rebalance_end(self, app: Any, state: dict) -> None:
        started = state.get("streamapp_assigned_at")
        if started is not None:
            TABLE_RECOVERY.observe(time.monotonic() - started)
