"""Prometheus metrics of the worker's HTTP endpoints (default registry)."""

from __future__ import annotations

from prometheus_client import Counter

HTTP_INGEST_REQUESTS = Counter(
    "streamapp_http_ingest_requests_total",
    "POST /api/v1/telemetry requests, by HTTP status answered.",
    ["status"],
)
HTTP_INGEST_RECORDS = Counter(
    "streamapp_http_ingest_records_total",
    "Records received over HTTP, by result (accepted/invalid).",
    ["result"],
)

for _status in ("202", "400", "401", "413", "503"):
    HTTP_INGEST_REQUESTS.labels(_status)
for _result in ("accepted", "invalid"):
    HTTP_INGEST_RECORDS.labels(_result)
