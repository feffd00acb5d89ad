"""The worker's HTTP surface: /metrics, health, the live fleet page and HTTP ingestion."""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Any

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from streamapp.kafka.raw import raw_topic
from streamapp.settings import Settings
from streamapp.web.auth import API_KEY_HEADER, key_refusal, log_refusal
from streamapp.web.fleet import FleetView, follow_predictions
from streamapp.web.ingest_http import Refusal, parse_batch, produce_records, read_limited
from streamapp.web.metrics import HTTP_INGEST_RECORDS, HTTP_INGEST_REQUESTS

TELEMETRY_PATH = "/api/v1/telemetry"
STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}

# Counter families shown on the fleet page (this worker's share of the traffic).
PAGE_COUNTERS = (
    "streamapp_ingest_messages",
    "streamapp_dead_letters",
    "streamapp_http_ingest_records",
    "streamapp_archive_messages",
    "streamapp_feature_windows_emitted",
    "streamapp_rul_predictions",
)


def static_file(name: str) -> bytes | None:
    """A file shipped in streamapp/web/static (package data), None if there is no such file."""
    folder = resources.files("streamapp.web").joinpath("static")
    names = {entry.name for entry in folder.iterdir() if entry.is_file()}
    if name not in names:
        return None
    return folder.joinpath(name).read_bytes()


def counter_totals(families: tuple[str, ...] = PAGE_COUNTERS) -> dict[str, dict[str, float]]:
    """Per-family totals, split by the `topic`/`result` labels when present."""
    totals: dict[str, dict[str, float]] = {}
    for metric in REGISTRY.collect():
        if metric.name not in families:
            continue
        split = totals.setdefault(metric.name, {})
        for sample in metric.samples:
            if not sample.name.endswith("_total"):
                continue
            label = sample.labels.get("topic") or sample.labels.get("result") or "all"
            split[label] = split.get(label, 0.0) + sample.value
    return totals


def readiness(app: faust.App) -> tuple[bool, dict[str, Any]]:
    """Ready once the group assigned this worker its partitions and tables are recovered.

    A member left without partitions (more workers than partitions) is ready too: it
    has joined and stands by, and would otherwise fail its healthcheck forever.
    """
    consumer = app.consumer
    try:
        assigned = len(consumer.assignment())
    except Exception:  # the consumer thread is not started yet
        assigned = 0
    joined = app.rebalancing_count > 0 and not app.rebalancing
    recovered = app.tables.recovery.completed.is_set()
    ready = joined and recovered
    return ready, {
        "status": "ready" if ready else "starting",
        "assigned_partitions": assigned,
        "rebalancing": bool(app.rebalancing),
        "tables_recovered": recovered,
    }


def register(app: faust.App, settings: Settings) -> None:
    fleet = FleetView(settings.fleet_history_points, settings.fleet_max_assets)
    telemetry = raw_topic(app, settings.topic_telemetry)

    @app.task
    async def feed_fleet_view() -> None:
        """Keep this worker's fleet page fed from the whole predictions topic."""
        await follow_predictions(settings, fleet)

    @app.page("/metrics")
    class Metrics(View):
        """Prometheus exposition of every streamapp metric in this worker."""

        async def get(self, request: Request) -> Response:
            return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/health/live")
    class Live(View):
        """The process and its event loop answer."""

        async def get(self, request: Request) -> Response:
            return self.json({"status": "live"})

    @app.page("/health/ready")
    class Ready(View):
        """Partitions assigned and tables recovered: the worker is doing its job."""

        async def get(self, request: Request) -> Response:
            ready, body = readiness(app)
            return self.json(body, status=200 if ready else 503)

    @app.page("/")
    class FleetPage(View):
        """The live fleet page (plain HTML/JS from the package, no build step)."""

        async def get(self, request: Request) -> Response:
            return self.bytes(static_file("index.html") or b"", content_type="text/html")

    @app.page("/static/{name}")
    class Static(View):
        """The page's script and stylesheet."""

        async def get(self, request: Request, name: str) -> Response:
            body = static_file(name)
            suffix = name[name.rfind(".") :] if "." in name else ""
            if body is None or suffix not in STATIC_TYPES:
                return self.json({"error": "not found"}, status=404)
            return self.bytes(body, content_type=STATIC_TYPES[suffix])

    @app.page("/api/v1/fleet")
    class Fleet(View):
        """Assets by ascending predicted RUL, with history, and this worker's counters."""

        async def get(self, request: Request) -> Response:
            try:
                limit = max(1, min(1000, int(request.query.get("limit", "200"))))
            except ValueError:
                limit = 200
            body = fleet.snapshot(limit, settings.rul_alert_threshold_cycles)
            body["counters"] = counter_totals()
            body["ready"] = readiness(app)[0]
            return self.json(body)

    @app.page(TELEMETRY_PATH)
    class TelemetryIngest(View):
        """Telemetry over HTTP: 202 accepted, 400 invalid, 401 bad key, 413 too large."""

        def refuse(self, refusal: Refusal, remote: str | None) -> Response:
            HTTP_INGEST_REQUESTS.labels(str(refusal.status)).inc()
            log_refusal(TELEMETRY_PATH, refusal.status, str(refusal.body.get("error")), remote)
            return self.json(refusal.body, status=refusal.status)

        async def post(self, request: Request) -> Response:
            remote = request.remote
            reason = key_refusal(request.headers.get(API_KEY_HEADER), settings, "HTTP ingestion")
            if reason is not None:
                return self.refuse(Refusal(401, {"error": reason}), remote)
            limit = settings.http_max_body_bytes
            too_large = Refusal(413, {"error": f"body larger than {limit} bytes"})
            if request.content_length is not None and request.content_length > limit:
                return self.refuse(too_large, remote)
            body = await read_limited(request.content, limit)
            if body is None:
                return self.refuse(too_large, remote)
            parsed = parse_batch(body, limit, settings.max_payload_bytes)
            if isinstance(parsed, Refusal):
                HTTP_INGEST_RECORDS.labels("invalid").inc(parsed.body.get("invalid", 1))
                return self.refuse(parsed, remote)
            try:
                await asyncio.wait_for(produce_records(telemetry, parsed), timeout=30.0)
            except Exception as exc:
                return self.refuse(Refusal(503, {"error": f"broker unavailable: {exc}"}), remote)
            HTTP_INGEST_RECORDS.labels("accepted").inc(len(parsed))
            HTTP_INGEST_REQUESTS.labels("202").inc()
            return self.json(
                {"accepted": len(parsed), "topic": settings.topic_telemetry}, status=202
            )
