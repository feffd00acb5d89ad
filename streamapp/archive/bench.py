"""`streamapp bench archive`: archive throughput against plain aiokafka, in one process.

Both read the same N JSON telemetry messages (8 partitions) from a private embedded
stack (Tansu + moto, from `streamapp.bench.harness`). The ceiling is a plain aiokafka
consumer decoding each value as JSON; the archive is the real agent in an in-process
Faust app, timed from its first message to the N-th message durably in the temp
layer. `buffer_flush_interval` is 0.5 s so the last partial buffers do not wait 30 s.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamapp.archive.agent import register
from streamapp.archive.buffer import Batch
from streamapp.bench.harness import (
    PARTITIONS,
    bench_app,
    bench_settings,
    broker_label,
    create_topics,
    private_broker,
    private_s3,
    produce,
    raw_consume,
)
from streamapp.settings import Settings

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


def messages(count: int) -> Iterator[tuple[bytes, bytes, int]]:
    """N messages two hours old, spread round-robin over the partitions."""
    base_ms = int(time.time() * 1000) - 2 * 3_600_000
    for i in range(count):
        key, value = message(i, base_ms)
        yield key, value, i % PARTITIONS


async def archive_consume(settings: Settings, count: int, data_dir: Path) -> dict[str, float]:
    """Run the archive agent in-process until `count` messages are in the temp layer."""
    app = bench_app(settings, data_dir, PARTITIONS)
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
    await create_topics(settings, [topic], PARTITIONS)
    await produce(settings, topic, messages(count))
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
    with private_broker("archive") as (broker, state), private_s3(state) as s3:
        settings = bench_settings(broker.bootstrap, "archive", buffer_flush_interval=0.5, **s3)
        return {
            "broker": broker_label(broker),
            **asyncio.run(run_bench(settings, count, state / "faust")),
        }
