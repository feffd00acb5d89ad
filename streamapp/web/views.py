"""The worker's HTTP surface: /metrics, health, the live fleet page, HTTP ingestion and the
OpenAPI document describing every endpoint (streamapp/web/openapi.json)."""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Any

import faust
from faust.web import Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from streamapp.runtime.raw import raw_topic
from streamapp.settings import Settings
from streamapp.web.base import ApiError, ApiView
from streamapp.web.errors import ERRORS
from streamapp.web.fleet import FleetView, follow_battery_health, follow_predictions
from streamapp.web.ingest_http import Refusal, parse_batch, produce_records
from streamapp.web.metrics import HTTP_INGEST_RECORDS, HTTP_INGEST_REQUESTS
from streamapp.web.ratelimit import TELEMETRY

TELEMETRY_PATH = "/api/v1/telemetry"
OPENAPI_PATH = "/api/v1/openapi.json"
FLEET_LIMITS = (1, 1000)
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


def openapi_document() -> bytes:
    """The checked-in OpenAPI document (package data), served byte for byte."""
    return resources.files("streamapp.web").joinpath("openapi.json").read_bytes()


def fleet_limit(text: str | None) -> int | None:
    """The `limit` query parameter of /api/v1/fleet (default 200); None when invalid."""
    if text is None:
        return 200
    low, high = FLEET_LIMITS
    if not text.isascii() or not text.isdigit() or len(text) > 4:
        return None
    value = int(text)
    return value if low <= value <= high else None


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


def register(app: faust.App, settings: Settings, base: type[ApiView]) -> None:
    """Attach the operations, fleet and ingestion endpoints; `base` is the worker's ApiView."""
    fleet = FleetView(settings.fleet_history_points, settings.fleet_max_assets)
    telemetry = raw_topic(app, settings.topic_telemetry)

    @app.task
    async def feed_fleet_view() -> None:
        """Keep this worker's fleet page fed from the whole predictions topic."""
        await follow_predictions(settings, fleet)

    @app.task
    async def feed_fleet_evs() -> None:
        """Keep this worker's fleet page's EVs fed from the whole battery-health topic."""
        await follow_battery_health(settings, fleet)

    @app.page(OPENAPI_PATH)
    class OpenApi(base):
        """This document: every endpoint, its parameters, bodies, answers and errors."""

        async def get(self, request: Request) -> Response:
            return self.bytes(openapi_document(), content_type="application/json")

    @app.page("/metrics")
    class Metrics(base):
        """Prometheus exposition of every streamapp metric in this worker."""

        async def get(self, request: Request) -> Response:
            return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/health/live")
    class Live(base):
        """The process and its event loop answer."""

        async def get(self, request: Request) -> Response:
            return self.json({"status": "live"})

    @app.page("/health/ready")
    class Ready(base):
        """Partitions assigned and tables recovered: the worker is doing its job."""

        async def get(self, request: Request) -> Response:
            ready, body = readiness(app)
            return self.json(body, status=200 if ready else 503)

    @app.page("/")
    class FleetPage(base):
        """The live fleet page (plain HTML/JS from the package, no build step)."""

        async def get(self, request: Request) -> Response:
            return self.bytes(static_file("index.html") or b"", content_type="text/html")

    @app.page("/static/{name}")
    class Static(base):
        """The page's script and stylesheet."""

        async def get(self, request: Request, name: str) -> Response:
            body = static_file(name)
            suffix = name[name.rfind(".") :] if "." in name else ""
            if body is None or suffix not in STATIC_TYPES:
                raise ApiError("not_found", f"no static file {name[:64]!r}")
            return self.bytes(body, content_type=STATIC_TYPES[suffix])

    @app.page("/api/v1/fleet")
    class Fleet(base):
        """Assets by ascending predicted RUL, with history, EVs by ascending SoH, with
        their trend, and this worker's counters."""

        async def get(self, request: Request) -> Response:
            limit = fleet_limit(request.query.get("limit"))
            if limit is None:
                low, high = FLEET_LIMITS
                raise ApiError("invalid_request", f"limit must be an integer from {low} to {high}")
            body = fleet.snapshot(
                limit, settings.rul_alert_threshold_cycles, settings.battery_eol_soh
            )
            body["counters"] = counter_totals()
            body["ready"] = readiness(app)[0]
            return self.json(body)

    @app.page(TELEMETRY_PATH)
    class TelemetryIngest(base):
        """Telemetry over HTTP: 202 accepted, 400 invalid, 401 bad key, 413 too large."""

        def refuse(
            self, request: Request, error: str, detail: str, *args: Any, **kw: Any
        ) -> Response:
            HTTP_INGEST_REQUESTS.labels(str(ERRORS[error])).inc()
            return super().refuse(request, error, detail, *args, **kw)

        async def post(self, request: Request) -> Response:
            self.check_rate(request, TELEMETRY)
            self.check_key(request, "HTTP ingestion")
            body = await self.read_body(request)
            parsed = parse_batch(body, settings.http_max_body_bytes, settings.max_payload_bytes)
            if isinstance(parsed, Refusal):
                HTTP_INGEST_RECORDS.labels("invalid").inc(parsed.extra.get("invalid", 1))
                raise ApiError(parsed.error, parsed.detail, **parsed.extra)
            try:
                await asyncio.wait_for(produce_records(telemetry, parsed), timeout=30.0)
            except Exception as exc:
                raise ApiError("broker_unavailable", f"broker unavailable: {exc}") from None
            HTTP_INGEST_RECORDS.labels("accepted").inc(len(parsed))
            HTTP_INGEST_REQUESTS.labels("202").inc()
            return self.json(
                {"accepted": len(parsed), "topic": settings.topic_telemetry}, status=202
            )
