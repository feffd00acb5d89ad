"""Prometheus metrics of the worker's HTTP endpoints (default registry)."""

from __future__ import annotations

from prometheus_client import Counter

from streamapp.web.ratelimit import LIMITED_ENDPOINTS

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
HTTP_RESPONSES = Counter(
    "streamapp_http_responses_total",
    "Answers of the worker's web server, by route template and HTTP status.",
    ["route", "status"],
)
HTTP_RATE_LIMITED = Counter(
    "streamapp_http_rate_limited_total",
    "Requests refused with 429 by a rate limit, by limited endpoint.",
    ["endpoint"],
)

for _status in ("202", "400", "401", "413", "429", "503"):
    HTTP_INGEST_REQUESTS.labels(_status)
for _result in ("accepted", "invalid"):
    HTTP_INGEST_RECORDS.labels(_result)
for _endpoint in LIMITED_ENDPOINTS:
    HTTP_RATE_LIMITED.labels(_endpoint)
