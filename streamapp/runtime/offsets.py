"""Per-partition log start offset and high watermark, the high watermark from Fetch.

Never from ListOffsets(latest): the embedded broker answers it with the base offset of
the last batch + 1, which is wrong whenever that batch holds several records; the high
watermark of a Fetch response is right on every broker. `fetch_bounds` sends one Fetch
per leader, from each partition's log start, with a small byte budget (the broker
returns the partition header and at most about one batch) and a short wait (the
embedded broker answers a zero-wait Fetch with no partitions at all). Table recovery
(`streamapp.runtime.consumer`) and the archive audit both use it.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.fetch import FetchRequest

from streamapp.runtime.config import aiokafka_kwargs
from streamapp.settings import Settings

_READ_UNCOMMITTED = 0
_MAX_WAIT_MS = 100
_PARTITION_BYTES = 1024
_RESPONSE_BYTES = 1 << 20
_RETRY_S = 0.2

# Faust's TP and aiokafka's TopicPartition: both (topic, partition) named tuples.
TPLike = TypeVar("TPLike", bound=tuple[str, int])


async def fetch_bounds(
    consumer: AIOKafkaConsumer, partitions: Iterable[TPLike], timeout_s: float = 10.0
) -> dict[TPLike, tuple[int, int]]:
    """`{tp: (log start offset, high watermark)}`, the high watermark from Fetch responses.

    Uses the started `consumer`'s connections; needs no assignment or group.
    """
    wanted = list(partitions)
    found: dict[TPLike, tuple[int, int]] = {}
    client = consumer._client
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        missing = [tp for tp in wanted if tp not in found]
        if not missing:
            return found
        if time.monotonic() > deadline:
            raise last_error or KafkaError(f"no high watermark for {missing}")
        starts = await consumer.beginning_offsets([TopicPartition(*tp) for tp in missing])
        by_leader: dict[int, dict[str, list[tuple[int, int, int]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        asked: dict[tuple[str, int], TPLike] = {}
        for tp in missing:
            leader = client.cluster.leader_for_partition(TopicPartition(*tp))
            if leader is None or leader < 0:
                continue
            start = starts[TopicPartition(*tp)]
            by_leader[leader][tp[0]].append((tp[1], start, _PARTITION_BYTES))
            asked[(tp[0], tp[1])] = tp
        for leader, topics in by_leader.items():
            request = FetchRequest(
                _MAX_WAIT_MS, 1, _RESPONSE_BYTES, _READ_UNCOMMITTED, list(topics.items())
            )
            response = await client.send(leader, request)
            for topic, answers in response.topics:
                for partition, error_code, highwater, *_ in answers:
                    answered = asked.get((topic, partition))
                    if answered is None:
                        continue
                    if error_code:
                        last_error = for_code(error_code)()
                        continue
                    found[answered] = (starts[TopicPartition(topic, partition)], highwater)
        if len(found) < len(wanted):
            await client.force_metadata_update()
            await asyncio.sleep(_RETRY_S)


async def partition_bounds(
    settings: Settings, topic: str, timeout_s: float = 10.0
) -> dict[int, tuple[int, int]]:
    """`{partition: (first offset, high watermark)}`; an empty partition has first == end."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **aiokafka_kwargs(settings))
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        bounds = await fetch_bounds(
            consumer, [TopicPartition(topic, p) for p in sorted(partitions)], timeout_s
        )
        return {tp.partition: bounds[tp] for tp in sorted(bounds)}
    finally:
        await consumer.stop()
