"""Helpers of the operations tests: a worker per test package, scraping, HTTP, topics."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow.dataset as ds
import pyarrow.fs as pafs
from prometheus_client.parser import text_string_to_metric_families

from streamapp import s3
from streamapp.archive.verify import verify
from streamapp.runtime.clients import ConsumedRecord, consume, produce_lines
from streamapp.settings import Settings
from tests.conftest import ROOT, settings_from_env, stack_env
from tests.support.worker import WorkerProcess

Families = dict[str, Any]


@contextmanager
def running_worker(
    kafka_broker: str, s3_server: str, state_dir: Path, log: Path, **extra_env: str
) -> Iterator[tuple[WorkerProcess, dict[str, str]]]:
    """A ready worker on fresh topics, group and bucket; killed on exit (see the
    `start_worker` fixture for why)."""
    env = stack_env(kafka_broker, s3_server, **extra_env)
    asyncio.run(s3.ensure_bucket(settings_from_env(env)))
    log.unlink(missing_ok=True)
    worker = WorkerProcess(env, state_dir, log).start()
    try:
        worker.wait_ready(timeout=120)
        yield worker, env
    finally:
        worker.kill()


@contextmanager
def running_model_worker(
    kafka_broker: str, s3_server: str, state_dir: Path, log: Path, **extra_env: str
) -> Iterator[tuple[WorkerProcess, dict[str, str]]]:
    """`running_worker` serving a copy of the shipped models (training jobs and activations
    write there, never to the repository's `models/`), on one torch thread."""
    models = state_dir / "models"
    shutil.copytree(ROOT / "models", models)
    with running_worker(
        kafka_broker, s3_server, state_dir / "worker", log,
        MODELS_DIR=str(models), TORCH_THREADS="1", **extra_env,
    ) as started:  # fmt: skip
        yield started


def scrape(worker: WorkerProcess) -> Families:
    """The worker's /metrics parsed by prometheus_client, by family name."""
    status, body = worker.get("/metrics", timeout=10)
    assert status == 200, body[:500]
    return {family.name: family for family in text_string_to_metric_families(body.decode())}


def exposed_names(families: Families) -> set[str]:
    """Every series name a PromQL query can use against this exposition."""
    names: set[str] = set()
    for family in families.values():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


def counter_total(families: Families, name: str, **labels: str) -> float:
    """Sum of a counter family's `_total` samples matching `labels`."""
    family = families.get(name)
    if family is None:
        return 0.0
    return sum(
        sample.value
        for sample in family.samples
        if sample.name.endswith("_total")
        and all(sample.labels.get(key) == value for key, value in labels.items())
    )


def post(
    url: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """POST and return (status, decoded JSON body), errors included."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def get_json(worker: WorkerProcess, path: str) -> Any:
    status, body = worker.get(path, timeout=10)
    assert status == 200, body[:500]
    return json.loads(body)


def settings_of(env: dict[str, str]) -> Settings:
    return settings_from_env(env)


def produce_json(env: dict[str, str], topic: str, records: list[dict[str, Any]]) -> int:
    """Send records as JSON lines, keyed by their asset_id."""
    lines = [json.dumps(record).encode() for record in records]
    return asyncio.run(produce_lines(settings_of(env), topic, lines))


def produce_raw(env: dict[str, str], topic: str, lines: list[bytes], key: str) -> int:
    return asyncio.run(produce_lines(settings_of(env), topic, lines, key))


def read_topic(env: dict[str, str], topic: str, idle_timeout: float = 3.0) -> list[ConsumedRecord]:
    """Every record of a topic from the beginning, until it stays idle."""

    async def collect() -> list[ConsumedRecord]:
        return [
            record async for record in consume(settings_of(env), topic, True, None, idle_timeout)
        ]

    return asyncio.run(collect())


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    """Poll `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def prediction(asset_id: str, rul: float, ts: str, version: str = "test-v1") -> dict[str, Any]:
    """A `rul-predictions` record in BRIEF's contract."""
    return {
        "asset_id": asset_id,
        "sensor_id": "SENSOR001",
        "timestamp": ts,
        "rul_prediction": rul,
        "confidence_interval_lower": max(0.0, rul - 12.0),
        "confidence_interval_upper": rul + 12.0,
        "confidence_level": 0.9,
        "uncertainty": 12.0,
        "model_used": "ensemble",
        "model_scores": {"lstm": rul - 1, "gru": rul + 1, "tcn": rul},
        "model_version": version,
        "sequence_length": 30,
        "features": {"rms": 10.5},
        "metadata": {"latency_ms": 3.2},
    }


def temp_complete(settings: Settings, topic: str, expected: int) -> dict[str, Any] | None:
    """The audit once every offset is in temp (it reads every temp line: poll it slowly)."""
    report = asyncio.run(verify(settings, topic))
    done = report["kafka_messages"] == expected and report["missing"]["temp"]["count"] == 0
    return report if done else None


def compressed_dataset(settings: Settings, topic: str) -> ds.Dataset:
    """The compressed layer of `topic` as a Hive-partitioned Parquet dataset."""
    endpoint = urlparse(settings.s3_endpoint or "")
    filesystem = pafs.S3FileSystem(
        access_key=settings.s3_key.get_secret_value(),
        secret_key=settings.s3_secret.get_secret_value(),
        endpoint_override=endpoint.netloc,
        scheme=endpoint.scheme,
        region=settings.s3_region,
    )
    return ds.dataset(
        f"{settings.s3_bucket}/{settings.s3_prefix}/compressed/{topic}",
        filesystem=filesystem,
        format="parquet",
        partitioning="hive",
    )


def send_through_sigkills(
    start_worker: Callable[..., WorkerProcess],
    env: dict[str, str],
    victim_dir: Path,
    chunks: list[Any],
    send: Callable[[Any], None],
) -> None:
    """Two workers share the input; after each of the first four chunks sent, the victim
    is SIGKILLed and restarted (its local state deleted before the third restart)."""
    steady = start_worker(env, name="steady")
    victim = start_worker(env, name="victim", data_dir=victim_dir)
    steady.wait_ready()
    victim.wait_ready()
    for round_, chunk in enumerate(chunks):
        send(chunk)
        time.sleep(1.5)
        if round_ < 4:
            victim.kill()
            if round_ == 2:
                shutil.rmtree(victim.data_dir, ignore_errors=True)
            victim.start()
            victim.wait_ready()
