"""Per-partition first offset and high watermark, read from Fetch responses.

Never from ListOffsets: the embedded broker answers ListOffsets(latest) with the base
offset of the last batch + 1, which is wrong whenever that batch holds several
records; the high watermark of a Fetch response is right on every broker.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from streamapp.kafka.config import aiokafka_kwargs
from streamapp.settings import Settings


async def partition_bounds(
    settings: Settings, topic: str, timeout_s: float = 10.0
) -> dict[int, tuple[int, int]]:
    """`{partition: (first offset, high watermark)}`; an empty partition has first == end."""
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=64 * 1024,
        **aiokafka_kwargs(settings),
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        first: dict[int, int] = {}
        end: dict[int, int] = {}
        deadline = time.monotonic() + timeout_s
        while len(end) < len(tps) or len(first) < len(tps):
            batches = await consumer.getmany(timeout_ms=200, max_records=len(tps) * 2)
            for tp, records in batches.items():
                if records and tp.partition not in first:
                    first[tp.partition] = records[0].offset
                consumer.pause(tp)
            for tp in tps:
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    end[tp.partition] = highwater
                    if highwater == 0 or (
                        tp.partition not in first and time.monotonic() >= deadline
                    ):
                        first.setdefault(tp.partition, highwater)
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0)
        return {p: (first.get(p, end.get(p, 0)), end.get(p, 0)) for p in sorted(partitions)}
    finally:
        await consumer.stop()
