"""The RUL HTTP API on the worker's web server (logic in `rul.serving.api`, `rul.training.jobs`).

GET  /api/v1/rul/models                      per asset class: active and serving versions
POST /api/v1/rul/models/{version}/activate   verify and activate a version for its class
                                             (X-Api-Key; ?asset_class= when ambiguous)
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
from botocore.exceptions import BotoCoreError, ClientError
from faust.web import Request, Response

from streamapp.contracts.codec import Invalid
from streamapp.rul.serving.api import (
    fleet_models_summary,
    parse_predict_request,
    predict_sequence,
)
from streamapp.rul.serving.live_model import LiveModels
from streamapp.rul.training.artifacts import (
    AmbiguousVersion,
    ArtifactError,
    InvalidVersion,
    UnknownVersion,
    activate,
    class_of_version,
)
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
    AmbiguousVersion: "invalid_request",
    UnknownVersion: "unknown_version",
    ArtifactError: "invalid_artifact",
    JobBusy: "job_running",
    ModelsNotWritable: "not_writable",
    DataUnavailable: "invalid_dataset",
    StorageUnavailable: "storage_unavailable",
    ClientError: "storage_unavailable",
    BotoCoreError: "storage_unavailable",
}


def unknown_class(name: str, live: LiveModels) -> ApiError:
    known = ", ".join(live.by_class)
    return ApiError("invalid_request", f"unknown asset_class {name[:64]!r}; known: {known}")


def register(
    app: faust.App, settings: Settings, live: LiveModels, base: type[ApiView]
) -> TrainJobs:
    """Attach the RUL endpoints to `app`; returns the worker's training jobs."""
    jobs = TrainJobs(settings)

    @app.on_before_shutdown.connect
    async def _stop_training_jobs(app: faust.App, **kwargs: object) -> None:
        await jobs.stop()

    @app.page(f"{PREFIX}/models")
    class Models(base):
        """Per class: versions, the active one (its ACTIVE) and the one this worker serves."""

        async def get(self, request: Request) -> Response:
            with refusing(REFUSALS, "read the models folder", request.path):
                summary = await asyncio.to_thread(fleet_models_summary, settings.models_dir, live)
            return self.json(summary)

    @app.page(f"{PREFIX}/models/{{version}}/activate")
    class Activate(base):
        """Checksums verified, then ACTIVE points at the version; every worker follows."""

        async def post(self, request: Request, version: str) -> Response:
            self.check_key(request, "model activation")
            unknown = sorted(set(request.query) - {"asset_class"})
            if unknown:
                names = ", ".join(repr(name[:64]) for name in unknown[:5])
                raise ApiError("invalid_request", f"unknown query parameters: {names}")
            named = request.query.get("asset_class")
            if named is not None and named not in live.by_class:
                raise unknown_class(named, live)
            bucket = live.bucket
            where = bucket.url if bucket else str(settings.models_dir)
            doing = f"activate {version} (write its class's ACTIVE in {where})"
            with refusing(REFUSALS, doing, request.path):
                if named is not None:
                    asset_class = named
                elif bucket is not None:
                    asset_class = await bucket.class_of_version(version)
                else:
                    asset_class = await asyncio.to_thread(
                        class_of_version, settings.models_dir, version
                    )
                if asset_class not in live.by_class:
                    raise UnknownVersion(f"{version} is of class {asset_class}, not served here")
                if bucket is not None:
                    await bucket.activate(settings.models_dir, asset_class, version)
                else:
                    await asyncio.to_thread(activate, live[asset_class].folder, version)
            model = live[asset_class]
            await model.refresh()
            serving = model.ensemble.version if model.ensemble else None
            return self.json({"asset_class": asset_class, "active": version, "serving": serving})

    @app.page(f"{PREFIX}/predict")
    class Predict(base):
        """The serving model on a posted sequence, exactly as the stream would predict."""

        async def post(self, request: Request) -> Response:
            self.check_rate(request, PREDICT)
            parsed = parse_predict_request(await self.json_body(request), MAX_STEPS)
            if isinstance(parsed, Invalid):
                raise ApiError("invalid_request", parsed.reason)
            asset_class = parsed.asset_class or live.class_of(parsed.steps[-1])
            if asset_class not in live.by_class:
                raise unknown_class(asset_class, live)
            ensemble = live[asset_class].ensemble
            if ensemble is None:
                raise ApiError(
                    "no_model", f"no model is loaded for class {asset_class}: activate a version"
                )
            result = await asyncio.to_thread(predict_sequence, ensemble, parsed, asset_class)
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
