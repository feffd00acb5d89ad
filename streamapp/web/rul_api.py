"""The RUL HTTP API on the worker's web server (logic in `rul.serving.api`, `rul.training.jobs`).

GET  /api/v1/rul/models                      active and serving versions, their metrics
POST /api/v1/rul/models/{version}/activate   verify and activate a version (X-Api-Key)
POST /api/v1/rul/predict                     a feature sequence -> a rul-predictions record
POST /api/v1/rul/train                       start `streamapp train` in a subprocess (X-Api-Key)
GET  /api/v1/rul/train/{job_id}              job status, exit code and log tail
"""

from __future__ import annotations

import asyncio

import faust
from faust.web import Request, Response, View

from streamapp.contracts.codec import Invalid, decode_json
from streamapp.rul.serving.api import models_summary, parse_predict_request, predict_sequence
from streamapp.rul.serving.live_model import LiveModel
from streamapp.rul.training.artifacts import ArtifactError, activate
from streamapp.rul.training.jobs import JobBusy, TrainJobs, parse_train_request
from streamapp.settings import Settings
from streamapp.web.auth import API_KEY_HEADER, key_refusal, log_refusal
from streamapp.web.ingest_http import read_limited

PREFIX = "/api/v1/rul"
MAX_STEPS = 10_000


def register(app: faust.App, settings: Settings, live: LiveModel) -> TrainJobs:
    """Attach the RUL endpoints to `app`; returns the worker's training jobs."""
    jobs = TrainJobs(settings)

    @app.on_before_shutdown.connect
    async def _stop_training_jobs(app: faust.App, **kwargs: object) -> None:
        await jobs.stop()

    class RulView(View):
        """Shared refusal and body handling of the RUL endpoints."""

        def refuse(self, request: Request, status: int, reason: str) -> Response:
            log_refusal(request.path, status, reason, request.remote)
            return self.json({"error": reason}, status=status)

        def key_refused(self, request: Request, what: str) -> Response | None:
            reason = key_refusal(request.headers.get(API_KEY_HEADER), settings, what)
            return None if reason is None else self.refuse(request, 401, reason)

        async def json_body(self, request: Request) -> object | Response:
            limit = settings.http_max_body_bytes
            if request.content_length is not None and request.content_length > limit:
                return self.refuse(request, 413, f"body larger than {limit} bytes")
            body = await read_limited(request.content, limit)
            if body is None:
                return self.refuse(request, 413, f"body larger than {limit} bytes")
            decoded = decode_json(body, limit)
            if isinstance(decoded, Invalid):
                return self.refuse(request, 400, decoded.reason)
            return decoded

    @app.page(f"{PREFIX}/models")
    class Models(RulView):
        """Versions, the active one (models/ACTIVE) and the one this worker serves."""

        async def get(self, request: Request) -> Response:
            summary = await asyncio.to_thread(models_summary, settings.models_dir, live.ensemble)
            return self.json(summary)

    @app.page(f"{PREFIX}/models/{{version}}/activate")
    class Activate(RulView):
        """Checksums verified, then ACTIVE points at the version; every worker follows."""

        async def post(self, request: Request, version: str) -> Response:
            if (refused := self.key_refused(request, "model activation")) is not None:
                return refused
            try:
                await asyncio.to_thread(activate, settings.models_dir, version)
            except ArtifactError as exc:
                return self.refuse(request, 400, str(exc))
            await live.refresh()
            serving = live.ensemble.version if live.ensemble else None
            return self.json({"active": version, "serving": serving})

    @app.page(f"{PREFIX}/predict")
    class Predict(RulView):
        """The serving model on a posted sequence, exactly as the stream would predict."""

        async def post(self, request: Request) -> Response:
            body = await self.json_body(request)
            if isinstance(body, Response):
                return body
            parsed = parse_predict_request(body, MAX_STEPS)
            if isinstance(parsed, Invalid):
                return self.refuse(request, 400, parsed.reason)
            ensemble = live.ensemble
            if ensemble is None:
                return self.refuse(request, 503, "no model is loaded: activate a version first")
            result = await asyncio.to_thread(predict_sequence, ensemble, parsed)
            if isinstance(result, Invalid):
                return self.refuse(request, 400, result.reason)
            return self.json(result)

    @app.page(f"{PREFIX}/train")
    class Train(RulView):
        """Start a training job: 202 with its id, 409 while another job runs."""

        async def post(self, request: Request) -> Response:
            if (refused := self.key_refused(request, "training")) is not None:
                return refused
            body = await self.json_body(request)
            if isinstance(body, Response):
                return body
            parsed = parse_train_request(body)
            if isinstance(parsed, Invalid):
                return self.refuse(request, 400, parsed.reason)
            try:
                job = jobs.start(parsed)
            except JobBusy as exc:
                return self.refuse(request, 409, str(exc))
            return self.json(
                {"job_id": job.id, "status": job.status, "status_url": f"{PREFIX}/train/{job.id}"},
                status=202,
            )

    @app.page(f"{PREFIX}/train/{{job_id}}")
    class TrainStatus(RulView):
        """Status, exit code, new model versions and the tail of the job's log."""

        async def get(self, request: Request, job_id: str) -> Response:
            job = jobs.get(job_id)
            if job is None:
                return self.refuse(request, 404, f"no training job {job_id[:64]!r} in this worker")
            return self.json(job.to_json())

    return jobs
