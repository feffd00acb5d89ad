"""`streamapp bench archive`: archive throughput against plain aiokafka, in one process.

Both read the same N JSON telemetry messages (8 partitions) from a private embedded
stack (Tansu + moto, started and stopped here). The ceiling is a plain aiokafka
consumer decoding each value as JSON; the archive is the real agent in an in-process
Faust app, timed from its first message to the N-th message durably in the temp
layer. `buffer_flush_interval` is 0.5 s so the last partial buffers do not wait 30 s.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streamapp.archive.agent import register
from streamapp.archive.buffer import Batch
from streamapp.kafka.config import aiokafka_kwargs, faust_broker_url
from streamapp.settings import Settings

PARTITIONS = 8
ASSETS = 100


def message(i: int, base_ms: int) -> tuple[bytes, bytes]:
    asset = f"ENGINE-{i % ASSETS:04d}"
    ts = datetime.fromtimestamp((base_ms + i) / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
    value = {
        "asset_id": asset,
        "ts": ts,
        "signals": {"s2": 642.1 + i % 7, "s3": 1589.7, "s4": 1400.6, "speed": 55.2},
        "cycle": i // ASSETS,
        "metadata": {"source": "bench"},
    }
    return asset.encode(), json.dumps(value, separators=(",", ":")).encode()


async def produce(settings: Settings, topic: str, count: int) -> None:
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(linger_ms=5, max_batch_size=512 * 1024, **aiokafka_kwargs(settings))
    await producer.start()
    try:
        base_ms = int(time.time() * 1000) - 2 * 3_600_000
        futures = []
        for i in range(count):
            key, value = message(i, base_ms)
            futures.append(await producer.send(topic, value, key=key, partition=i % PARTITIONS))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def raw_consume(settings: Settings, topic: str, count: int) -> float:
    """Messages per second of plain aiokafka + json.loads over the same topic."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **aiokafka_kwargs(settings))
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
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


def bench_app(settings: Settings, data_dir: Path) -> faust.App:
    return faust.App(
        f"bench-archive-{uuid.uuid4().hex[:8]}",
        broker=faust_broker_url(settings),
        store="memory://",
        datadir=str(data_dir),
        web_enabled=False,
        topic_partitions=PARTITIONS,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_rebalance_timeout=settings.kafka_rebalance_timeout_s,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_s,
        broker_commit_interval=1.0,
        autodiscover=False,
    )


async def archive_consume(settings: Settings, count: int, data_dir: Path) -> dict[str, float]:
    """Run the archive agent in-process until `count` messages are in the temp layer."""
    app = bench_app(settings, data_dir)
    written = {"messages": 0, "raw": 0, "done_at": 0.0}
    done = asyncio.Event()

    def on_written(batch: Batch) -> None:
        written["messages"] += len(batch.messages)
        written["raw"] += batch.nbytes
        if written["messages"] >= count:
            written["done_at"] = time.monotonic()
            done.set()

    archiver = register(app, settings, on_written)
    await app.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=max(120.0, count / 500))
    finally:
        await app.stop()
    assert archiver.first_message_at is not None
    elapsed = written["done_at"] - archiver.first_message_at
    return {"archive_msgs_per_s": count / elapsed, "raw_line_bytes": written["raw"]}


async def temp_bytes(settings: Settings, topic: str) -> int:
    from streamapp.archive.records import temp_topic_prefix
    from streamapp.archive.store import ArchiveStore

    async with ArchiveStore(settings) as store:
        objects = await store.list(temp_topic_prefix(store.prefix, topic))
    return sum(info.size for info in objects)


async def run_bench(settings: Settings, count: int, data_dir: Path) -> dict[str, Any]:
    topic = settings.topic_telemetry
    await produce(settings, topic, count)
    raw = await raw_consume(settings, topic, count)
    archived = await archive_consume(settings, count, data_dir)
    written = await temp_bytes(settings, topic)
    return {
        "messages": count,
        "partitions": PARTITIONS,
        "raw_consume_msgs_per_s": round(raw),
        "archive_msgs_per_s": round(archived["archive_msgs_per_s"]),
        "ratio": round(archived["archive_msgs_per_s"] / raw, 3),
        "compression_ratio": round(archived["raw_line_bytes"] / max(1, written), 2),
        "buffer_size": settings.buffer_size,
    }


def bench_archive(count: int) -> dict[str, Any]:
    """Start a private embedded stack, run the bench, stop the stack."""
    from streamapp.dev.stack import DEV_BUCKET, DEV_S3_KEY, DEV_S3_SECRET, DevStack

    state = Path(tempfile.mkdtemp(prefix="streamapp-bench-"))
    stack = DevStack(state / "stack")
    try:
        env = stack.up(None)
        settings = Settings(
            kafka_bootstrap_servers=env.kafka_bootstrap_servers,
            s3_endpoint=env.s3_endpoint,
            s3_bucket=DEV_BUCKET,
            s3_key=DEV_S3_KEY,
            s3_secret=DEV_S3_SECRET,
            buffer_flush_interval=0.5,
        )
        return asyncio.run(run_bench(settings, count, state / "faust"))
    finally:
        stack.down()
        shutil.rmtree(state, ignore_errors=True)
