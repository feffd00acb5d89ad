"""Bulk sends: one record batch per partition instead of one `send` call per message.

A batched agent publishes hundreds of records at once. Through `producer.send` each
costs about 60 us of Python (Faust's produce signal, aiokafka's partitioner, a future
per message, a 16 KiB batch that fills every ~15 predictions and then waits for the
previous one to drain). Here the records of a partition go into one large record batch
built directly, partitioned by the same murmur2 partitioner as `send` (so a key lands
where any Kafka client would put it), and each batch is one future.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any, cast

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from aiokafka.producer.message_accumulator import BatchBuilder
from faust.types import AppT

from streamapp.runtime.metrics import MESSAGES_SENT, SEND_SECONDS

#: Largest record batch built here: well under the broker's default 1 MB message limit.
BATCH_BYTES = 512 * 1024


async def send_all(
    app: AppT, topic: str, records: Iterable[tuple[bytes | None, bytes | None, int | None]]
) -> dict[int, int]:
    """Send `(key, value, partition or None)` in order; wait for the broker's acks.

    Returns the offset of the last record written to each partition.
    """
    started = time.monotonic()
    producer = cast(Any, app.producer)._ensure_producer()  # Faust's aiokafka producer
    await producer.client._wait_on_metadata(topic)
    metadata = producer.client.cluster
    partitions = sorted(metadata.partitions_for_topic(topic))
    available = sorted(metadata.available_partitions_for_topic(topic))
    by_partition: dict[int, list[tuple[bytes | None, bytes | None]]] = {}
    for key, value, partition in records:
        if partition is None:
            partition = producer._partitioner(key, partitions, available)
        by_partition.setdefault(partition, []).append((key, value))
    pending = []
    now_ms = int(time.time() * 1000)  # the builder needs a timestamp: publish time
    for partition, items in by_partition.items():
        batch, count = _new_batch(producer), 0
        for key, value in items:
            if batch.append(timestamp=now_ms, key=key, value=value) is None:
                sent = await producer.send_batch(batch, topic, partition=partition)
                pending.append(_sent(sent, count))
                batch, count = _new_batch(producer), 0
                if batch.append(timestamp=now_ms, key=key, value=value) is None:
                    raise ValueError(f"a record of {len(value or b'')} bytes exceeds {BATCH_BYTES}")
            count += 1
        sent = await producer.send_batch(batch, topic, partition=partition)
        pending.append(_sent(sent, count))
    last: dict[int, int] = {}
    for partition, offset in await asyncio.gather(*pending):
        last[partition] = max(offset, last.get(partition, -1))
    MESSAGES_SENT.labels(topic).inc(sum(len(items) for items in by_partition.values()))
    SEND_SECONDS.observe(time.monotonic() - started)  # one observation per bulk send
    return last


def _new_batch(producer: AIOKafkaProducer) -> BatchBuilder:
    codec = producer._message_accumulator._compression_type  # the codec id the producer uses
    return BatchBuilder(BATCH_BYTES, codec, is_transactional=0)


async def _sent(delivery: asyncio.Future[Any], count: int) -> tuple[int, int]:
    """(partition, offset of the batch's last record) once the broker has it."""
    metadata = await delivery
    return metadata.partition, metadata.offset + count - 1


def default_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives a key: where a keyed
    table's state for it lives."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class HomePartitions:
    """Each key's `default_partition`, cached (murmur2 in pure Python is not cheap on a
    per-message path); the cache is cleared whole when it holds `limit` keys."""

    def __init__(self, partitions: int, limit: int = 100_000) -> None:
        self.partitions = partitions
        self.limit = limit
        self.homes: dict[bytes, int] = {}

    def of(self, key: bytes) -> int:
        home = self.homes.get(key)
        if home is None:
            if len(self.homes) >= self.limit:
                self.homes.clear()
            home = self.homes[key] = default_partition(key, self.partitions)
        return home
