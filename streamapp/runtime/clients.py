"""Producing and reading records from the command line (`streamapp produce/consume`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streamapp.runtime.config import aiokafka_kwargs
from streamapp.settings import Settings


def record_key(line: bytes, explicit_key: str | None) -> bytes | None:
    """The key of a JSON line: `--key`, else its `asset_id` (a Tesla record's `vin`),
    else none."""
    if explicit_key is not None:
        return explicit_key.encode()
    try:
        record = json.loads(line)
    except ValueError:
        return None
    asset_id = (record.get("asset_id") or record.get("vin")) if isinstance(record, dict) else None
    return asset_id.encode() if isinstance(asset_id, str) and asset_id else None


async def produce_lines(
    settings: Settings, topic: str, lines: Iterable[bytes], key: str | None = None
) -> int:
    """Send each non-empty line as one record; returns how many were acknowledged."""
    producer = AIOKafkaProducer(
        linger_ms=5, max_request_size=4 * 1024 * 1024, **aiokafka_kwargs(settings)
    )
    await producer.start()
    sent = 0
    try:
        pending = []
        for line in lines:
            value = line.rstrip(b"\r\n")
            if not value:
                continue
            pending.append(await producer.send(topic, value, key=record_key(value, key)))
            if len(pending) >= 5000:
                for future in pending:
                    await future
                sent += len(pending)
                pending.clear()
        for future in pending:
            await future
        sent += len(pending)
    finally:
        await producer.stop()
    return sent


async def wait_for_partitions(
    consumer: AIOKafkaConsumer, topic: str, timeout_s: float | None, poll_s: float = 0.5
) -> set[int]:
    """Partitions of a topic, waiting for it to be created (forever when no timeout);
    the consumer's metadata is refreshed every `poll_s` meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    while True:
        partitions = consumer.partitions_for_topic(topic) or set()
        if partitions or (deadline is not None and loop.time() >= deadline):
            return partitions
        await asyncio.sleep(poll_s)
        await consumer._client.force_metadata_update()


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


async def consume(
    settings: Settings,
    topic: str,
    from_beginning: bool,
    max_records: int | None,
    idle_timeout_s: float | None,
) -> AsyncIterator[ConsumedRecord]:
    """Read a topic without a consumer group (nothing is committed, nobody is disturbed)."""
    consumer = AIOKafkaConsumer(
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        fetch_max_bytes=16 * 1024 * 1024,
        **aiokafka_kwargs(settings),
    )
    await consumer.start()
    try:
        partitions = await wait_for_partitions(consumer, topic, idle_timeout_s)
        if not partitions:
            return
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        if from_beginning:
            await consumer.seek_to_beginning()
        else:
            await consumer.seek_to_end()
        seen = 0
        timeout_ms = int((idle_timeout_s or 1.0) * 1000)
        while max_records is None or seen < max_records:
            batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=1000)
            if not batches and idle_timeout_s is not None:
                return
            for messages in batches.values():
                for message in messages:
                    yield ConsumedRecord(
                        message.topic,
                        message.partition,
                        message.offset,
                        message.timestamp,
                        message.key,
                        message.value,
                        tuple(message.headers or ()),
                    )
                    seen += 1
                    if max_records is not None and seen >= max_records:
                        return
    finally:
        await consumer.stop()
