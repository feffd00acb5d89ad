"""Producing and collecting the traffic of the reliability tests (real broker, no mocks)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streamapp.contracts.features import SOURCE as FEATURE_SOURCE
from streamapp.runtime.clients import ConsumedRecord
from streamapp.runtime.config import aiokafka_kwargs
from streamapp.runtime.offsets import partition_bounds
from streamapp.settings import Settings
from tests.reliability.corpus import Message

MAX_REQUEST_BYTES = 8 * 1024 * 1024
FEATURE_AGENT_MARK = f'"source":"{FEATURE_SOURCE}"'.encode()


async def produce(settings: Settings, topic: str, messages: Iterable[Message]) -> int:
    """Send every message as it is (None keys and values included); waits for the acks."""
    producer = AIOKafkaProducer(
        linger_ms=5, acks="all", max_request_size=MAX_REQUEST_BYTES, **aiokafka_kwargs(settings)
    )
    await producer.start()
    sent = 0
    try:
        pending = []
        for message in messages:
            pending.append(await producer.send(topic, message.value, key=message.key))
            if len(pending) >= 2000:
                await asyncio.gather(*pending)
                sent += len(pending)
                pending.clear()
        await asyncio.gather(*pending)
        sent += len(pending)
    finally:
        await producer.stop()
    return sent


@dataclass
class Collected:
    """Every record read per topic, in partition/offset order."""

    records: dict[str, list[ConsumedRecord]] = field(default_factory=lambda: defaultdict(list))

    def values(self, topic: str) -> list[bytes]:
        return [record.value or b"" for record in self.records[topic]]


async def collect(
    settings: Settings,
    topics: list[str],
    done: Callable[[Collected], bool],
    timeout_s: float,
    settle_s: float = 3.0,
) -> Collected:
    """Read `topics` from the beginning until `done` holds and nothing new came for `settle_s`.

    One consumer for the whole wait, so polling does not re-read what it has. Returns
    what it has at the timeout too: the caller's assertions say what is missing.
    """
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=32 * 1024 * 1024,
        max_partition_fetch_bytes=MAX_REQUEST_BYTES,
        **aiokafka_kwargs(settings),
    )
    await consumer.start()
    found = Collected()
    try:
        partitions = []
        for topic in topics:
            deadline = time.monotonic() + 30
            while not consumer.partitions_for_topic(topic) and time.monotonic() < deadline:
                await consumer._client.force_metadata_update()
                await asyncio.sleep(0.5)
            partitions += [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for messages in batches.values():
                for m in messages:
                    found.records[m.topic].append(
                        ConsumedRecord(
                            m.topic,
                            m.partition,
                            m.offset,
                            m.timestamp,
                            m.key,
                            m.value,
                            tuple(m.headers or ()),
                        )
                    )
            if batches:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= settle_s and done(found):
                break
    finally:
        await consumer.stop()
    return found


def windows_of(values: list[bytes]) -> dict[tuple[str, str], set[bytes]]:
    """The feature agent's emissions by (asset_id, window end): each set should hold one value.

    Other records of the topic (upstream services, hostile input) are left out.
    """
    by_window: dict[tuple[str, str], set[bytes]] = defaultdict(set)
    for value in values:
        if not value.startswith(b"{") or FEATURE_AGENT_MARK not in value:
            continue
        record = json.loads(value)
        if record.get("metadata", {}).get("source") == FEATURE_SOURCE:
            by_window[(record["asset_id"], record["window"]["end"])].add(value)
    return by_window


def predictions_of(values: list[bytes]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """`rul-predictions` by (asset_id, window end of the features it was made from)."""
    by_window: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for value in values:
        record = json.loads(value)
        by_window[(record["asset_id"], record["metadata"]["window_end"])].append(record)
    return by_window


async def partition_lag(settings: Settings, names: list[str]) -> dict[str, int]:
    """`{"topic[partition]": lag}` of the consumer group (high watermarks from Fetch)."""
    consumer = AIOKafkaConsumer(
        group_id=settings.kafka_group_id, enable_auto_commit=False, **aiokafka_kwargs(settings)
    )
    await consumer.start()
    lags: dict[str, int] = {}
    try:
        for name in names:
            for partition, (_, end) in (await partition_bounds(settings, name)).items():
                committed = await consumer.committed(TopicPartition(name, partition)) or 0
                lags[f"{name}[{partition}]"] = max(0, end - committed)
    finally:
        await consumer.stop()
    return lags


async def group_lag(settings: Settings, names: list[str]) -> int:
    """Messages of `names` the consumer group has not committed."""
    return sum((await partition_lag(settings, names)).values())
