"""`streamapp bench features`: windowed features against plain aiokafka, in one process.

Both read the same N simulated engine messages (1,000 assets, one message per asset
per second of event time, 8 partitions) from a private embedded broker started and
stopped here. The ceiling is a plain aiokafka consumer decoding each value as JSON
(the archive bench's `raw_consume`); the feature agent runs in an in-process Faust app
with its RocksDB table and changelog, timed from its first record to the N-th record
applied, with the closed windows' features produced and acknowledged by the broker.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streamapp.bench.harness import PARTITIONS, bench_app, raw_consume
from streamapp.features import metrics
from streamapp.features.agent import register
from streamapp.kafka.config import aiokafka_kwargs
from streamapp.settings import Settings
from streamapp.sim.fleet import Simulation, messages

ASSETS = 1000


async def produce(settings: Settings, count: int) -> None:
    """N simulator messages keyed by asset (default partitioner: each asset's home)."""
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings))
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(name, PARTITIONS, 1)
                for name in (settings.topic_telemetry, settings.topic_features)
            ]
        )
    finally:
        await admin.close()
    producer = AIOKafkaProducer(linger_ms=5, max_batch_size=512 * 1024, **aiokafka_kwargs(settings))
    await producer.start()
    try:
        futures = []
        for key, value in itertools.islice(messages(Simulation(ASSETS, seed=11)), count):
            futures.append(await producer.send(settings.topic_telemetry, value, key=key))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def applied_records() -> float:
    return sum(metrics.RECORDS.labels(outcome)._value.get() for outcome in ("applied", "rejected"))


async def features_consume(settings: Settings, count: int, data_dir: Path) -> dict[str, float]:
    """Run the feature agent in-process until `count` records have been applied."""
    app = bench_app(settings, data_dir, PARTITIONS)
    register(app, settings)
    baseline = applied_records()
    emitted_before = metrics.WINDOWS_EMITTED._value.get()
    await app.start()
    try:
        started = None
        deadline = time.monotonic() + max(180.0, count / 500)
        while applied_records() - baseline < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {applied_records() - baseline} of {count} applied")
            if started is None and applied_records() > baseline:
                started = time.monotonic()
            await asyncio.sleep(0.005)
        finished = time.monotonic()
    finally:
        await app.stop()
    if started is None:
        raise ValueError(
            f"all {count} messages were applied in one batch, so no rate can be measured: "
            f"use several times FEATURE_BATCH_SIZE ({settings.feature_batch_size}) messages"
        )
    return {
        "features_msgs_per_s": count / (finished - started),
        "windows_emitted": metrics.WINDOWS_EMITTED._value.get() - emitted_before,
    }


async def run_bench(settings: Settings, count: int, data_dir: Path) -> dict[str, Any]:
    await produce(settings, count)
    raw = await raw_consume(settings, settings.topic_telemetry, count)
    features = await features_consume(settings, count, data_dir)
    return {
        "messages": count,
        "assets": ASSETS,
        "partitions": PARTITIONS,
        "window": f"{settings.window_kind} {settings.window_size:g}s",
        "raw_consume_msgs_per_s": round(raw),
        "features_msgs_per_s": round(features["features_msgs_per_s"]),
        "ratio": round(features["features_msgs_per_s"] / raw, 3),
        "windows_emitted": int(features["windows_emitted"]),
    }


def bench_features(count: int) -> dict[str, Any]:
    """Start a private embedded broker, run the bench, stop the broker."""
    from streamapp.dev.stack import free_port, start_broker, stop_process

    state = Path(tempfile.mkdtemp(prefix="streamapp-bench-features-"))
    port = free_port()
    broker = start_broker(port, state / "broker.log")
    try:
        settings = Settings(
            kafka_bootstrap_servers=f"127.0.0.1:{port}",
            kafka_group_id=f"bench-features-{uuid.uuid4().hex[:8]}",
        )
        return asyncio.run(run_bench(settings, count, state / "faust"))
    finally:
        stop_process(broker.pid)
        shutil.rmtree(state, ignore_errors=True)
