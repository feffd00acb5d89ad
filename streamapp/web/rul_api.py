"""The RUL HTTP API on the worker's web server (logic in `rul.serving.api`, `rul.training.jobs`).

GET  /api/v1/rul/models                      active and serving versions, their metrics
POST /api/v1/rul/models/{version}/activate   verify and activate a version (X-Api-Key)
POST /api/v1/rul/predict                     a feature sequence -> a rul-predictions record
POST /api/v1/rul/train                       start `streamapp train` in a subprocess (X-Api-Key)
GET  /api/v1/rul/train/{job_id}              job status, exit code and log tail

Filesystem and S3 failures are answered, never raised: a read-only models folder is a
409 `not_writable`, S3 failing while a job's data is checked a 503 `storage_unavailable`,
each with its reason.
"""

from __future__ import annotations

import asyncio

import faust
from faust.web import Request, Response

from streamapp.contracts.codec import Invalid
from streamapp.rul.serving.api import models_summary, parse_predict_request, predict_sequence
from streamapp.rul.serving.live_model import LiveModel
from streamapp.rul.training.artifacts import ArtifactError, InvalidVersion, UnknownVersion, activate
from streamapp.rul.training.jobs import (
    DataUnavailable,
    JobBusy,
    ModelsNotWritable,
    StorageUnavailable,
    TrainJobs,
    parse_train_request,
)
from streamapp.settings import Settings
from streamapp.web.base import ApiError, ApiView, refusing
from streamapp.web.ratelimit import PREDICT, TRAIN

PREFIX = "/api/v1/rul"
MAX_STEPS = 10_000
# The domain exceptions of these endpoints and their error codes (ERRORS gives the status).
REFUSALS: dict[type[Exception], str] = {
    InvalidVersion: "invalid_version",
    UnknownVersion: "unknown_version",
    ArtifactError: "invalid_artifact",
    JobBusy: "job_running",
    ModelsNotWritable: "not_writable",
    DataUnavailable: "invalid_dataset",
    StorageUnavailable: "storage_unavailable",
}


def register(app: faust.App, settings: Settings, live: LiveModel, base: type[ApiView]) -> TrainJobs:
    """Attach the RUL endpoints to `app`; returns the worker's training jobs."""
    jobs = TrainJobs(settings)

    @app.on_before_shutdown.connect
    async def _stop_training_jobs(app: faust.App, **kwargs: object) -> None:
        await jobs.stop()

    @app.page(f"{PREFIX}/models")
    class Models(base):
        """Versions, the active one (models/ACTIVE) and the one this worker serves."""

        async def get(self, request: Request) -> Response:
            with refusing(REFUSALS, "read the models folder", request.path):
                summary = await asyncio.to_thread(
                    models_summary, settings.models_dir, live.ensemble
                )
            return self.json(summary)

    @app.page(f"{PREFIX}/models/{{version}}/activate")
    class Activate(base):
        """Checksums verified, then ACTIVE points at the version; every worker follows."""

        async def post(self, request: Request, version: str) -> Response:
            self.check_key(request, "model activation")
            doing = f"activate {version} (write {settings.models_dir}/ACTIVE)"
            with refusing(REFUSALS, doing, request.path):
                await asyncio.to_thread(activate, settings.models_dir, version)
            await live.refresh()
            serving = live.ensemble.version if live.ensemble else None
            return self.json({"active": version, "serving": serving})

    @app.page(f"{PREFIX}/predict")
    class Predict(base):
        """The serving model on a posted sequence, exactly as the stream would predict."""

        async def post(self, request: Request) -> Response:
            self.check_rate(request, PREDICT)
            parsed = parse_predict_request(await self.json_body(request), MAX_STEPS)
            if isinstance(parsed, Invalid):
                raise ApiError("invalid_request", parsed.reason)
            ensemble = live.ensemble
            if ensemble is None:
                raise ApiError("no_model", "no model is loaded: activate a version first")
            result = await asyncio.to_thread(predict_sequence, ensemble, parsed)
            if isinstance(result, Invalid):
                raise ApiError("invalid_request", result.reason)
            return self.json(result)

    @app.page(f"{PREFIX}/train")
    class Train(base):
        """Start a training job: 202 with its id, 409 while another job runs."""

        async def post(self, request: Request) -> Response:
            self.check_rate(request, TRAIN)
            self.check_key(request, "training")
            parsed = parse_train_request(await self.json_body(request))
            if isinstance(parsed, Invalid):
                raise ApiError("invalid_request", parsed.reason)
            with refusing(REFUSALS, "create the job's directory", request.path):
                job = await jobs.submit(parsed)
            return self.json(
                {"job_id": job.id, "status": job.status, "status_url": f"{PREFIX}/train/{job.id}"},
                status=202,
            )

    @app.page(f"{PREFIX}/train/{{job_id}}")
    class TrainStatus(base):
        """Status, exit code, new model versions and the tail of the job's log."""

        async def get(self, request: Request, job_id: str) -> Response:
            job = jobs.get(job_id)
            if job is None:
                raise ApiError("not_found", f"no training job {job_id[:64]!r} in this worker")
            return self.json(job.to_json())

    return jobs
