"""The archive end to end on a real Tansu broker and a real moto S3 server.

Worker processes are real `streamapp worker` subprocesses; crashes are SIGKILLs and
the S3 outage is a cut TCP proxy in front of moto. `archive verify` decides.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streamapp.archive.compaction import compact
from streamapp.archive.verify import is_clean, verify
from streamapp.runtime.config import aiokafka_kwargs
from streamapp.settings import Settings
from tests.support.ops import (
    compressed_dataset,
    produce_raw,
    scrape,
    settings_of,
    temp_complete,
    wait_for,
)
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

PARTITIONS = 8
ASSETS = 40
YESTERDAY = datetime.now(tz=UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)


def create_topics(settings: Settings) -> None:
    async def create() -> None:
        admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings))
        await admin.start()
        try:
            await admin.create_topics(
                [
                    NewTopic(t, PARTITIONS, 1)
                    for t in (settings.topic_telemetry, settings.topic_tesla)
                ]
            )
        finally:
            await admin.close()

    asyncio.run(create())


def messages(start: int, count: int, invalid_every: int = 100) -> list[tuple[str, bytes]]:
    """(key, value) pairs over 3 closed hours; every `invalid_every`-th one is not JSON."""
    found = []
    for i in range(start, start + count):
        asset = f"ENGINE-{i % ASSETS:04d}"
        if i % invalid_every == 0:
            found.append((asset, b"\xffnot json " + str(i).encode()))
            continue
        ts = YESTERDAY + timedelta(seconds=i * 10800 / 20000)
        record = {
            "asset_id": asset,
            "ts": ts.isoformat().replace("+00:00", "Z"),
            "signals": {"s2": 640 + i % 5, "s3": 1589.7},
            "cycle": i,
        }
        found.append((asset, json.dumps(record).encode()))
    return found


def send(env: dict[str, str], topic: str, pairs: list[tuple[str, bytes]]) -> None:
    by_key: dict[str, list[bytes]] = {}
    for key, value in pairs:
        by_key.setdefault(key, []).append(value)
    for key, values in by_key.items():
        produce_raw(env, topic, values, key)


def archive_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    return {
        **env,
        "BUFFER_SIZE": "500",
        "BUFFER_FLUSH_INTERVAL": "1",
        "COMPRESSION_INTERVAL": "3600",
        "COMPACTION_GRACE": "0",
        **extra,
    }


@pytest.mark.tansu
def test_three_sigkills_lose_and_duplicate_nothing(isolated_env, start_worker) -> None:
    env = archive_env(isolated_env)
    settings = settings_of(env)
    topic = settings.topic_telemetry
    create_topics(settings)
    rng = random.Random(20261122)
    total, chunk = 20_000, 2_500
    worker = start_worker(env, name="w0")
    worker.wait_ready(timeout=120)
    sent, kills = 0, 0
    while sent < total:
        send(env, topic, messages(sent, chunk))
        sent += chunk
        if kills < 3 and sent >= (kills + 1) * 5_000:
            time.sleep(rng.uniform(0.2, 3.0))
            worker.kill()
            kills += 1
            worker = start_worker(env, name=f"w{kills}")
            worker.wait_ready(timeout=120)
    assert kills == 3
    report = wait_for(
        lambda: temp_complete(settings, topic, total), 180, "all offsets in temp", every=2.0
    )
    worker.stop()

    reports = asyncio.run(compact(settings, [topic]))
    assert len(reports[0].hours_compacted) >= 3
    again = asyncio.run(compact(settings, [topic]))
    assert again[0].rows_written == 0 and again[0].hours_compacted == []

    report = asyncio.run(verify(settings, topic))
    invalid = total // 100
    assert is_clean(report), report
    assert report["kafka_messages"] == total
    assert report["temp_distinct_offsets"] == total
    assert report["invalid_messages"] == invalid
    assert report["compressed_rows"] == total - invalid
    assert report["pending_compaction"] == 0

    dataset = compressed_dataset(settings, topic)
    table = dataset.to_table()
    assert table.num_rows == total - invalid
    assert {"asset_id", "ts", "s2", "s3", "partition", "offset", "date", "hour"} <= set(
        table.column_names
    )
    assert len(set(table.column("asset_id").to_pylist())) == ASSETS


def test_a_20s_s3_outage_keeps_the_worker_up_and_memory_capped(
    isolated_env, start_worker, tmp_path: Path
) -> None:
    direct = settings_of(isolated_env)
    moto = urlparse(direct.s3_endpoint or "")
    cap = 256 * 1024
    with TcpProxy(moto.hostname or "127.0.0.1", moto.port or 80) as proxy:
        env = archive_env(
            isolated_env,
            S3_ENDPOINT=f"http://127.0.0.1:{proxy.port}",
            WORKER_BUFFER_MAX_BYTES=str(cap),
            BUFFER_SIZE="200",
            S3_RETRY_MAX_BACKOFF="2",
        )
        topic = direct.topic_telemetry
        create_topics(direct)
        worker = start_worker(env)
        worker.wait_ready(timeout=120)
        send(env, topic, messages(0, 3_000))
        # Resume points come from S3: the cut must fall after they are known, or nothing is held.
        wait_for(lambda: temp_complete(direct, topic, 3_000), 120, "first offsets", every=2.0)
        proxy.cut()
        outage_end = time.monotonic() + 20
        send(env, topic, messages(3_000, 5_000))
        held = []
        while time.monotonic() < outage_end:
            assert worker.alive(), worker.log_tail()
            families = scrape(worker)
            held.append(families["streamapp_archive_worker_held_bytes"].samples[0].value)
            time.sleep(1)
        proxy.restore()
        assert max(held) > 0
        assert max(held) <= cap + 2048
        errors = scrape(worker)["streamapp_archive_s3_errors"]
        assert sum(s.value for s in errors.samples if s.name.endswith("_total")) > 0
        wait_for(lambda: temp_complete(direct, topic, 8_000), 180, "all offsets", every=2.0)
        assert worker.alive()
    report = asyncio.run(verify(direct, topic))
    assert report["missing"]["temp"]["count"] == 0
    assert report["duplicates"]["temp"]["count"] == 0


def test_a_graceful_stop_writes_the_buffers_at_once(isolated_env, start_worker) -> None:
    """SIGTERM with messages buffered for a long flush interval: the worker writes them
    as it stops, within seconds, not at the interval (Faust waits for every fetched
    message to be acked before it stops, and Docker or Kubernetes SIGKILL it after 10 or
    30 s). Offsets another agent had not yet applied are left uncommitted: that agent
    applies them after the restart."""
    env = archive_env(isolated_env, BUFFER_FLUSH_INTERVAL="600")
    settings = settings_of(env)
    topic = settings.topic_telemetry
    create_topics(settings)
    worker = start_worker(env)
    worker.wait_ready(timeout=120)
    total = 400  # under BUFFER_SIZE per partition: nothing is sealed by size
    send(env, topic, messages(0, total))

    def buffered() -> float | None:
        family = scrape(worker).get("streamapp_archive_buffer_messages")
        held = sum(sample.value for sample in family.samples) if family else 0
        return held if held == total else None

    wait_for(buffered, 60, "every message buffered")
    assert worker.process is not None
    started = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=60) == 0, worker.log_tail()
    assert time.monotonic() - started < 30
    report = asyncio.run(verify(settings, topic))
    assert report["temp_distinct_offsets"] == total, report
