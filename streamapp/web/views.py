"""/metrics and health endpoints on the worker's web port."""

from __future__ import annotations

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streamapp.settings import Settings


def register(app: faust.App, settings: Settings) -> None:
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
            consumer = app.consumer
            assigned = len(consumer.assignment()) if consumer is not None else 0
            recovered = app.tables.recovery.completed.is_set()
            ready = assigned > 0 and recovered and app.rebalancing is False
            body = {
                "status": "ready" if ready else "starting",
                "assigned_partitions": assigned,
                "tables_recovered": recovered,
            }
            return self.json(body, status=200 if ready else 503)
