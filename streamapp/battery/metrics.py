"""Prometheus metrics of battery health (default registry, `streamapp_` prefix)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SESSIONS = Counter(
    "streamapp_battery_sessions_total",
    "Charge sessions closed, by kind (ac, dc) and whether they were usable.",
    ["kind", "usable"],
)
RECORDS = Counter(
    "streamapp_battery_records_total",
    "EV records handled by the battery agent, by outcome (applied, replayed, refused).",
    ["outcome"],
)
WEEKS = Counter("streamapp_battery_weeks_total", "Weekly battery-health records published.")
SOH = Histogram(
    "streamapp_battery_soh_percent",
    "Published weekly State of Health (%), one observation per VIN and week.",
    buckets=(70, 75, 80, 85, 88, 90, 92, 94, 96, 98, 100, 102),
)
VINS_UNDER_THRESHOLD = Gauge(
    "streamapp_battery_vins_under_threshold",
    "VINs of this worker whose latest SoH is at or under BATTERY_EOL_SOH.",
)
