"""Changelog recovery that takes its end offsets from fetch responses, not ListOffsets.

Faust reads each changelog partition up to the offset ListOffsets(latest) returns. The
embedded broker answers that with the base offset of the last batch + 1, short of the
true end whenever the batch holds several records, so recovery would stop early and
silently lose table updates. The high watermark in a Fetch response is right on that
broker and on Apache Kafka alike, so this consumer thread asks for it: one Fetch per
leader, from each partition's log start, with a small byte budget (the broker returns
the partition header and at most about one batch) and a short wait (the embedded
broker answers a zero-wait Fetch with no partitions at all).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.fetch import FetchRequest
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

logger = logging.getLogger(__name__)

_ATTEMPTS = 5
_READ_UNCOMMITTED = 0
_MAX_WAIT_MS = 100
_PARTITION_BYTES = 1024
_RESPONSE_BYTES = 1 << 20


async def fetch_highwaters(consumer: AIOKafkaConsumer, partitions: Iterable[TP]) -> dict[TP, int]:
    """High watermark of each partition, from Fetch responses of the partition leaders."""
    wanted = list(partitions)
    found: dict[TP, int] = {}
    client = consumer._client
    last_error: Exception | None = None
    for _ in range(_ATTEMPTS):
        missing = [tp for tp in wanted if tp not in found]
        if not missing:
            return found
        starts = await consumer.beginning_offsets([TopicPartition(*tp) for tp in missing])
        by_leader: dict[int, dict[str, list[tuple[int, int, int]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for tp in missing:
            leader = client.cluster.leader_for_partition(TopicPartition(*tp))
            if leader is None or leader < 0:
                await client.force_metadata_update()
                continue
            start = starts[TopicPartition(*tp)]
            by_leader[leader][tp.topic].append((tp.partition, start, _PARTITION_BYTES))
        for leader, topics in by_leader.items():
            request = FetchRequest(
                _MAX_WAIT_MS, 1, _RESPONSE_BYTES, _READ_UNCOMMITTED, list(topics.items())
            )
            response = await client.send(leader, request)
            for topic, answers in response.topics:
                for partition, error_code, highwater, *_ in answers:
                    if error_code:
                        last_error = for_code(error_code)()
                        continue
                    found[TP(topic, partition)] = highwater
        if len(found) < len(wanted):
            await client.force_metadata_update()
    if len(found) < len(wanted):
        raise last_error or KafkaError(f"no high watermark for {set(wanted) - set(found)}")
    return found


class FetchHighwaterConsumerThread(AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread with fetch-based high watermarks."""

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        if self.consumer.in_transaction:
            return await super()._highwaters(partitions)
        highwaters = await fetch_highwaters(consumer, partitions)
        logger.debug("fetch high watermarks: %s", highwaters)
        return highwaters


class FetchHighwaterMixin:
    """Makes a Faust consumer class create the consumer thread above."""

    def _new_consumer_thread(self: Any) -> FetchHighwaterConsumerThread:
        return FetchHighwaterConsumerThread(self, loop=self.loop, beacon=self.beacon)


def install(app: faust.App) -> None:
    """Make `app`'s consumer (hence table recovery) use fetch high watermarks (idempotent)."""
    transport = app.transport
    base = transport.Consumer
    if issubclass(base, FetchHighwaterMixin):
        return
    transport.Consumer = type(f"FetchHighwater{base.__name__}", (FetchHighwaterMixin, base), {})
