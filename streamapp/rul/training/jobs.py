"""Training jobs started over HTTP: `streamapp train` in a subprocess, on a path or an S3 prefix.

A job runs the very command a user would (`python -m streamapp train ...`) in its own
process group, so training never blocks or crashes the worker that started it, and its
output goes to a log file whose tail the status endpoint shows. Data under an S3 prefix
is first copied to the job's directory (C-MAPSS files keep their names; `features`
objects are concatenated into one JSON-lines file). One job runs at a time per worker:
training takes every core it is given. `TrainJobs.submit` refuses a job before it starts
when its data is not there (one S3 listing or one stat) or models/ cannot be written, so
the caller gets the reason at once instead of a job that fails later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from streamapp.contracts.codec import Invalid
from streamapp.rul.training.artifacts import VERSION_RE, class_folder, list_versions
from streamapp.rul.training.networks import MODEL_KINDS
from streamapp.rul.training.train import TrainConfig
from streamapp.settings import Settings

logger = logging.getLogger(__name__)

S3_SCHEME = "s3://"
FORMATS = ("cmapss", "features")
KEPT_JOBS = 100
TAIL_LINES = 40
FEATURES_FILE = "features.jsonl"
S3_CHECK_TIMEOUT_S = 15.0
SUBSET_RE = re.compile(r"[A-Za-z0-9]{1,16}")
# `models` as text: names separated by commas, spaces allowed around each (the
# OpenAPI document's pattern is this one, anchored).
_KIND = "|".join(MODEL_KINDS)
MODELS_TEXT_RE = re.compile(rf" *({_KIND}) *(, *({_KIND}) *)*")


@dataclass(frozen=True, slots=True)
class TrainRequest:
    """What `POST /api/v1/rul/train` may ask for; everything else keeps `train`'s defaults."""

    data: str
    format: str = "cmapss"
    subset: str = "FD001"
    models: tuple[str, ...] = TrainConfig.models  # what `streamapp train` trains by default
    epochs: int = 30
    window: int = 30
    seed: int = 42
    activate: bool = False
    asset_class: str = "turbofan"

    @property
    def from_s3(self) -> bool:
        return self.data.startswith(S3_SCHEME)


def _int_field(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int | str:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return f"{name} must be an integer from {low} to {high}"
    return value


def parse_train_request(body: Any) -> TrainRequest | Invalid:
    """Validate a JSON body: `data` (path or s3://bucket/prefix) and optional settings."""
    if not isinstance(body, dict):
        return Invalid("body must be a JSON object")
    unknown = sorted(set(body) - set(TrainRequest.__slots__))
    if unknown:
        return Invalid(f"unknown fields: {', '.join(unknown)}")
    data = body.get("data")
    if not isinstance(data, str) or not data.strip():
        return Invalid("data must be a dataset path or an s3://bucket/prefix")
    if data.startswith(S3_SCHEME) and not data[len(S3_SCHEME) :].split("/", 1)[0]:
        return Invalid("data: an S3 location needs a bucket: s3://bucket/prefix")
    fmt = body.get("format", "cmapss")
    if fmt not in FORMATS:
        return Invalid(f"format must be one of {', '.join(FORMATS)}")
    subset = body.get("subset", "FD001")
    if not isinstance(subset, str) or not SUBSET_RE.fullmatch(subset):
        return Invalid("subset must be a C-MAPSS subset name such as FD001")
    models = body.get("models", list(TrainConfig.models))
    if isinstance(models, str):
        if not MODELS_TEXT_RE.fullmatch(models):
            return Invalid(f"models must be a non-empty list of {', '.join(MODEL_KINDS)}")
        models = [name.strip() for name in models.split(",")]
    if not isinstance(models, list) or not models or any(m not in MODEL_KINDS for m in models):
        return Invalid(f"models must be a non-empty list of {', '.join(MODEL_KINDS)}")
    epochs = _int_field(body, "epochs", 30, 1, 1000)
    window = _int_field(body, "window", 30, 1, 1000)
    seed = _int_field(body, "seed", 42, 0, 2**31 - 1)
    for value in (epochs, window, seed):
        if isinstance(value, str):
            return Invalid(value)
    activate = body.get("activate", False)
    if not isinstance(activate, bool):
        return Invalid("activate must be true or false")
    asset_class = body.get("asset_class", "turbofan" if fmt == "cmapss" else None)
    if asset_class is None:
        return Invalid("asset_class is required with format features: the class it serves")
    if not isinstance(asset_class, str) or not VERSION_RE.fullmatch(asset_class):
        return Invalid("asset_class must be a class name (letters, digits, '.', '_', '-')")
    return TrainRequest(
        data,
        fmt,
        subset.upper(),
        tuple(models),
        int(epochs),
        int(window),
        int(seed),
        activate,
        asset_class,
    )


def train_argv(request: TrainRequest, data: Path, out: Path, threads: int) -> list[str]:
    """The `streamapp train` command line of a job (data already local)."""
    return [
        sys.executable, "-m", "streamapp", "train",
        "--data", str(data), "--format", request.format, "--subset", request.subset,
        "--models", ",".join(request.models), "--epochs", str(request.epochs),
        "--window", str(request.window), "--seed", str(request.seed),
        # One training process: the worker that started the job keeps the other core.
        "--out", str(out), "--threads", str(threads), "--jobs", "1",
        "--asset-class", request.asset_class,
        "--activate" if request.activate else "--no-activate",
    ]  # fmt: skip


def split_s3(location: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> (`bucket`, `some/prefix`)."""
    bucket, _, prefix = location[len(S3_SCHEME) :].partition("/")
    return bucket, prefix


def log_tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last lines of a job log ('' before it exists)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.replace("\r", "\n").splitlines()[-lines:])


@dataclass
class TrainJob:
    """One job's state, as `GET /api/v1/rul/train/{job_id}` shows it."""

    id: str
    request: TrainRequest
    directory: Path
    status: str = "queued"
    exit_code: int | None = None
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    versions: list[str] = field(default_factory=list)
    pid: int | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "train.log"

    @property
    def done(self) -> bool:
        return self.status in ("succeeded", "failed")

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.id,
            "status": self.status,
            "exit_code": self.exit_code,
            "data": self.request.data,
            "format": self.request.format,
            "asset_class": self.request.asset_class,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "model_versions": self.versions,
            "log_tail": log_tail(self.log_path),
        }


class JobBusy(RuntimeError):
    """A training job is already running in this worker."""


class DataUnavailable(ValueError):
    """The request names data that is not there: no such path, bucket or objects."""


class StorageUnavailable(RuntimeError):
    """S3 failed or refused the worker while a job's data was checked."""


class ModelsNotWritable(RuntimeError):
    """The models folder cannot take the versions a job would save (a read-only mount)."""


def folder_writable(path: Path) -> bool:
    """Whether `path`, or the nearest existing folder above it, can be written to.

    `os.access` reports a read-only filesystem even to root, who passes every
    permission check.
    """
    for folder in (path, *path.parents):
        if folder.exists():
            return os.access(folder, os.W_OK)
    return False


def _local_path_exists(data: str) -> bool:
    try:
        return Path(data).exists()
    except OSError as exc:  # File name too long (a NUL byte just does not exist)
        raise DataUnavailable(f"data is not a usable path: {exc}") from None


async def check_data(settings: Settings, request: TrainRequest) -> None:
    """Raise DataUnavailable or StorageUnavailable unless the job's data is there."""
    if not request.from_s3:
        if not await asyncio.to_thread(_local_path_exists, request.data):
            raise DataUnavailable(f"no such dataset path: {request.data[:200]}")
        return
    bucket, prefix = split_s3(request.data)
    try:
        found = await asyncio.wait_for(
            prefix_has_objects(settings, bucket, prefix), S3_CHECK_TIMEOUT_S
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "unknown")
        if code in ("NoSuchBucket", "InvalidBucketName"):
            raise DataUnavailable(f"no bucket {bucket[:64]!r} in S3") from None
        logger.error("event=train_data_check_failed bucket=%s s3_error=%s", bucket[:64], code)
        raise StorageUnavailable(f"S3 refused to list s3://{bucket[:64]}: {code}") from None
    except ParamValidationError as exc:
        raise DataUnavailable(f"not a valid S3 location: {str(exc)[:200]}") from None
    except (BotoCoreError, OSError, TimeoutError) as exc:
        kind = type(exc).__name__
        logger.error("event=train_data_check_failed bucket=%s s3_error=%s", bucket[:64], kind)
        raise StorageUnavailable(f"S3 unreachable: {kind}") from None
    if not found:
        raise DataUnavailable(f"no objects under {request.data[:200]}")


class TrainJobs:
    """The training jobs of one worker (kept in memory; logs stay in `jobs_dir`)."""

    def __init__(self, settings: Settings, jobs_dir: Path | None = None) -> None:
        self.settings = settings
        self.jobs_dir = jobs_dir or settings.data_dir / "train-jobs"
        self.jobs: OrderedDict[str, TrainJob] = OrderedDict()
        self._tasks: dict[str, asyncio.Task] = {}

    def get(self, job_id: str) -> TrainJob | None:
        return self.jobs.get(job_id)

    def _check_idle(self) -> None:
        if any(not job.done for job in self.jobs.values()):
            raise JobBusy("a training job is already running; poll it and retry")

    async def submit(self, request: TrainRequest) -> TrainJob:
        """Check the models folder and the data, then start the job.

        Raises JobBusy, ModelsNotWritable, DataUnavailable, StorageUnavailable, or
        OSError when the job's directory cannot be created.
        """
        self._check_idle()
        models_dir = self.settings.models_dir
        if not await asyncio.to_thread(folder_writable, models_dir):
            raise ModelsNotWritable(f"{models_dir} is not writable: a job could not save models")
        await check_data(self.settings, request)
        return self.start(request)

    def start(self, request: TrainRequest) -> TrainJob:
        """Create and launch a job; JobBusy while another one runs."""
        self._check_idle()
        job_id = uuid.uuid4().hex[:16]
        job = TrainJob(job_id, request, self.jobs_dir / job_id)
        job.directory.mkdir(parents=True)
        self.jobs[job_id] = job
        while len(self.jobs) > KEPT_JOBS:
            self.jobs.popitem(last=False)
        self._tasks[job_id] = asyncio.ensure_future(self._run(job))
        return job

    async def _run(self, job: TrainJob) -> None:
        models_dir = self.settings.models_dir
        folder = class_folder(models_dir, job.request.asset_class)
        before = set(list_versions(folder))
        try:
            data = await self._materialise(job)
            job.status = "running"
            with job.log_path.open("ab") as log:
                process = await asyncio.create_subprocess_exec(
                    *train_argv(job.request, data, models_dir, self.settings.torch_threads),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                )
            job.pid = process.pid
            logger.info("event=train_job_started job=%s pid=%d", job.id, process.pid)
            job.exit_code = await process.wait()
            job.status = "succeeded" if job.exit_code == 0 else "failed"
        except Exception as exc:  # any failure (S3, disk, bad path) fails the job, reason logged
            with job.log_path.open("a", encoding="utf-8") as log:
                log.write(f"job failed before training: {exc}\n")
            job.status = "failed"
        finally:
            job.finished_at = time.time()
            job.versions = sorted(set(list_versions(folder)) - before)
            self._tasks.pop(job.id, None)
            logger.info(
                "event=train_job_finished job=%s status=%s exit_code=%s versions=%s",
                job.id,
                job.status,
                job.exit_code,
                ",".join(job.versions) or "-",
            )

    async def _materialise(self, job: TrainJob) -> Path:
        """A local path holding the job's data (downloaded first for an S3 prefix)."""
        request = job.request
        if not request.from_s3:
            path = Path(request.data)
            if not path.exists():
                raise ValueError(f"no such dataset path: {path}")
            return path
        job.status = "downloading"
        bucket, prefix = split_s3(request.data)
        target = job.directory / "data"
        count = await download_prefix(self.settings, bucket, prefix, target, request.format)
        with job.log_path.open("a", encoding="utf-8") as log:
            log.write(f"downloaded {count} objects from {request.data}\n")
        return target / FEATURES_FILE if request.format == "features" else target

    async def stop(self) -> None:
        """Stop running jobs (the whole process group) when the worker shuts down."""
        for job in self.jobs.values():
            if not job.done and job.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(job.pid, signal.SIGTERM)
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=10)


async def prefix_has_objects(settings: Settings, bucket: str, prefix: str) -> bool:
    """Whether any object is under `prefix` (one listing call; raises botocore errors)."""
    from streamapp import s3

    async with s3.client(settings) as client:
        page = await client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    return bool(page.get("Contents"))


async def download_prefix(
    settings: Settings, bucket: str, prefix: str, target: Path, fmt: str
) -> int:
    """Copy every object under `prefix` into `target`; returns how many there were."""
    from streamapp import s3

    target.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    async with s3.client(settings) as client:
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        if not keys:
            raise ValueError(f"no objects under s3://{bucket}/{prefix}")
        keys.sort()
        for key in keys:
            response = await client.get_object(Bucket=bucket, Key=key)
            async with response["Body"] as body:
                data = await body.read()
            if fmt == "features":
                with (target / FEATURES_FILE).open("ab") as handle:
                    handle.write(data if data.endswith(b"\n") else data + b"\n")
            else:
                name = Path(key).name
                if not name:
                    continue
                (target / name).write_bytes(data)
    return len(keys)
