"""Dead letters and Tesla normalisation through a running worker (real broker)."""

from __future__ import annotations

import asyncio
import json

from streamapp.contracts.deadletter import REASON_HEADER, SOURCE_OFFSET_HEADER, parse_headers
from streamapp.runtime.clients import consume, produce_lines
from streamapp.settings import Settings
from tests.conftest import settings_from_env
from tests.contracts.tesla_payloads import VIN, protobuf_payload


async def read_all(settings: Settings, topic: str, expected: int, timeout: float = 60.0) -> list:
    """Records of a topic, waiting until `expected` have arrived (or the timeout)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    records: list = []
    while loop.time() < deadline:
        records = [r async for r in consume(settings, topic, True, None, idle_timeout_s=1.0)]
        if len(records) >= expected:
            return records
        await asyncio.sleep(1.0)
    return records


def test_malformed_lines_land_in_the_dlq_exactly_once(isolated_env, start_worker) -> None:
    settings = settings_from_env(isolated_env)
    worker = start_worker(isolated_env)
    worker.wait_ready()
    valid = [
        json.dumps(
            {
                "asset_id": f"ENGINE-{i % 50:04d}",
                "ts": 1_795_327_200_000 + i,
                "signals": {"s2": 640 + i % 7},
            }
        ).encode()
        for i in range(1000)
    ]
    malformed = [
        f'{{"asset_id": "ENGINE-{i:04d}", "ts": "not a time", "signals": {{"s2": 1}}}}'.encode()
        if i % 2
        else f'{{"asset_id": "ENGINE-{i:04d}", "signals": '.encode()
        for i in range(100)
    ]
    lines = [line for pair in zip(valid[:100], malformed, strict=True) for line in pair]
    lines += valid[100:]
    sent = asyncio.run(produce_lines(settings, settings.topic_telemetry, lines))
    assert sent == 1100
    letters = asyncio.run(read_all(settings, settings.dlq_topic(settings.topic_telemetry), 100))
    assert len(letters) == 100
    assert sorted(letter.value for letter in letters) == sorted(malformed)
    for letter in letters:
        headers = parse_headers(list(letter.headers))
        assert headers[REASON_HEADER]
        assert int(headers[SOURCE_OFFSET_HEADER]) >= 0
    assert worker.alive()


def test_tesla_protobuf_becomes_telemetry_keyed_by_vin(isolated_env, start_worker) -> None:
    settings = settings_from_env(isolated_env)
    worker = start_worker(isolated_env)
    worker.wait_ready()

    async def send() -> None:
        from aiokafka import AIOKafkaProducer

        from streamapp.runtime.config import aiokafka_kwargs

        producer = AIOKafkaProducer(**aiokafka_kwargs(settings))
        await producer.start()
        try:
            await producer.send_and_wait(settings.topic_tesla, protobuf_payload(), key=VIN.encode())
            await producer.send_and_wait(settings.topic_tesla, b"\x00\x01garbage", key=VIN.encode())
        finally:
            await producer.stop()

    asyncio.run(send())
    normalised = asyncio.run(read_all(settings, settings.topic_telemetry, 1))
    assert len(normalised) == 1
    assert normalised[0].key == VIN.encode()
    record = json.loads(normalised[0].value)
    assert record["asset_id"] == VIN
    assert record["signals"]["VehicleSpeed"] == 55.0
    assert record["ts"] == "2026-11-22T06:00:00.123Z"
    letters = asyncio.run(read_all(settings, settings.dlq_topic(settings.topic_tesla), 1))
    assert [letter.value for letter in letters] == [b"\x00\x01garbage"]
    assert worker.alive()
