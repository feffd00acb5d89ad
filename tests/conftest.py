"""Session fixtures: a real broker and a real moto S3 server on loopback.

The broker is the embedded one `streamapp dev up` starts: Apache Kafka (KRaft), or
Tansu with STREAMAPP_BROKER=tansu (`make test-tansu`). Unit tests of pure logic don't
request these fixtures, so they never wait for them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamapp.dev.brokers import EmbeddedBroker, start_embedded
from streamapp.dev.stack import (
    DEV_BUCKET,
    DEV_PREFIX,
    DEV_REGION,
    DEV_S3_KEY,
    DEV_S3_SECRET,
    free_port,
    start_s3,
    stop_process,
)
from streamapp.settings import Settings
from tests.support.worker import WorkerProcess

ROOT = Path(__file__).resolve().parents[1]
# C-MAPSS where BRIEF puts it: `shared/` beside the checkout, or the workspace's copy
# (a fresh clone elsewhere, such as CI's, still finds it).
CMAPSS = next(
    (
        path
        for path in (ROOT.parent / "shared" / "data" / "cmapss", Path("/work/shared/data/cmapss"))
        if (path / "test_FD001.txt").exists()
    ),
    ROOT.parent / "shared" / "data" / "cmapss",
)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave logs and screenshots for a human to look at."""
    path = ROOT / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


# The broker kind of this run: STREAMAPP_BROKER, else Apache Kafka.
STACK_SETTINGS = Settings(_env_file=None)


def start_test_broker(directory: Path, **options: object) -> EmbeddedBroker:
    """A fresh embedded broker of this run's kind, its state under `directory`."""
    return start_embedded(
        STACK_SETTINGS.streamapp_broker, directory, STACK_SETTINGS.kafka_jars_cache, **options
    )


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """The session's embedded broker (Apache Kafka unless STREAMAPP_BROKER=tansu)."""
    started = start_test_broker(tmp_path_factory.mktemp("broker"))
    yield started
    started.stop()


@pytest.fixture(scope="session")
def kafka_broker(broker: EmbeddedBroker) -> str:
    """Bootstrap address of the session's broker."""
    return broker.bootstrap


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Endpoint of a real moto S3 server for the session."""
    port = free_port()
    process = start_s3(port, tmp_path_factory.mktemp("s3") / "s3.log")
    yield f"http://127.0.0.1:{port}"
    stop_process(process.pid)


def stack_env(kafka_broker: str, s3_endpoint: str, **extra: str) -> dict[str, str]:
    """Environment of a process using the test stack, isolated by a fresh group/bucket."""
    unique = uuid.uuid4().hex[:8]
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker,
        "S3_ENDPOINT": s3_endpoint,
        "S3_BUCKET": f"{DEV_BUCKET}-{unique}",
        "S3_KEY": DEV_S3_KEY,
        "S3_SECRET": DEV_S3_SECRET,
        "S3_REGION": DEV_REGION,
        "S3_PREFIX": DEV_PREFIX,
        "KAFKA_GROUP_ID": f"streamapp-{unique}",
        "TOPIC_TELEMETRY": f"telemetry-{unique}",
        "TOPIC_TESLA": f"tesla_V-{unique}",
        "TOPIC_FEATURES": f"extracted-features-{unique}",
        "TOPIC_PREDICTIONS": f"rul-predictions-{unique}",
        "TOPIC_CHARGE_SESSIONS": f"charge-sessions-{unique}",
        "TOPIC_BATTERY_HEALTH": f"battery-health-{unique}",
        **extra,
    }


def settings_from_env(env: dict[str, str]) -> Settings:
    return Settings(**{key.lower(): value for key, value in env.items()})


def provision(settings: Settings) -> None:
    """Create the bucket and the topics of `settings`: inputs, their DLQs, predictions."""
    from streamapp import s3
    from streamapp.runtime import topics

    asyncio.run(s3.ensure_bucket(settings))
    asyncio.run(topics.ensure_topics(settings, topics.worker_specs(settings)))


@pytest.fixture
def isolated_env(kafka_broker: str, s3_server: str) -> dict[str, str]:
    """A fresh bucket, consumer group and set of topic names on the session stack."""
    env = stack_env(kafka_broker, s3_server)
    provision(settings_from_env(env))
    return env


@pytest.fixture
def start_worker(tmp_path: Path, artifacts_dir: Path, request: pytest.FixtureRequest) -> Iterator:
    """Factory of worker subprocesses; every one is killed after the test.

    SIGKILL, not a graceful stop: the test has checked what it needed, the product is
    built to survive a SIGKILL at any moment, and a stop that waits for in-flight
    messages can cost its whole timeout (20 s) per worker.
    """
    workers: list[WorkerProcess] = []

    def start(
        env: dict[str, str],
        name: str = "worker",
        extra_args: tuple[str, ...] = (),
        data_dir: Path | None = None,
        wrapper: tuple[str, ...] = (),
    ) -> WorkerProcess:
        log = artifacts_dir / f"{request.node.name}-{name}.log"
        log.unlink(missing_ok=True)
        worker = WorkerProcess(env, data_dir or tmp_path / name, log, extra_args, wrapper)
        workers.append(worker.start())
        return worker

    yield start
    for worker in workers:
        worker.kill()
