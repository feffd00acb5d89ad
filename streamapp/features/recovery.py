"""Changelog recovery that takes its end offsets from fetch responses, not ListOffsets.

Faust reads each changelog partition up to the offset ListOffsets(latest) returns. The
embedded broker answers that with the base offset of the last batch + 1, short of the
true end whenever the batch holds several records, so recovery would stop early and
silently lose table updates. The consumer thread installed here takes its high
watermarks from Fetch responses instead (`streamapp.kafka.offsets.fetch_bounds`), right
on that broker and on Apache Kafka alike.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

from streamapp.kafka.offsets import fetch_bounds

logger = logging.getLogger(__name__)


class FetchHighwaterConsumerThread(AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread with fetch-based high watermarks."""

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        if self.consumer.in_transaction:
            return await super()._highwaters(partitions)
        bounds = await fetch_bounds(consumer, partitions)
        highwaters = {tp: end for tp, (_, end) in bounds.items()}
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
