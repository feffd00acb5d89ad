"""The worker's Kafka consumer thread: a short fetch wait, and Tansu's workarounds.

* Fetch wait. Faust hard-codes `fetch_max_wait_ms=1500`. Apache Kafka answers a fetch as
  soon as one byte is there, but Tansu holds it for most of that wait even with records
  ready (fetches came back every ~770 ms at 1,000 msgs/s, which was the whole of the
  RUL agent's latency). `KAFKA_FETCH_MAX_WAIT_MS` bounds it on any broker; an idle
  worker then asks a little more often, which costs nothing.
* On Tansu only (`streamapp.kafka.quirks`): changelog high watermarks from Fetch
  responses, since its ListOffsets(latest) falls short of the end; and the app's
  generation as this process's count of assignments, since its JoinGroup repeats a
  generation across different assignments and Faust fences stale messages by
  generation. Faust's own checks (recovery, table stores) compare that count with
  itself, and aiokafka still commits with the broker's generation.

Installed on an app by `install(app, fetch_max_wait_ms, quirks)`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aiokafka
import faust
from faust.transport.consumer import ensure_TPset
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, ConsumerRebalanceListener
from faust.types import TP

from streamapp.kafka.offsets import fetch_bounds
from streamapp.kafka.quirks import BrokerQuirks

logger = logging.getLogger(__name__)


class TunedConsumerThread(AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread with a fetch wait and, on Tansu, fetch-based
    high watermarks."""

    fetch_max_wait_ms: int = 1500
    fetch_high_watermarks: bool = False

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms  # read when its fetcher starts
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        if not self.fetch_high_watermarks or self.consumer.in_transaction:
            return await super()._highwaters(partitions)
        bounds = await fetch_bounds(consumer, partitions)
        highwaters = {tp: end for tp, (_, end) in bounds.items()}
        logger.debug("fetch high watermarks: %s", highwaters)
        return highwaters


class EpochRebalanceListener(ConsumerRebalanceListener):
    """Gives every assignment a new generation id of this process (Tansu only)."""

    async def on_partitions_assigned(self, assigned: Any) -> None:
        thread = self._thread
        app = thread.app
        epoch = app.consumer_generation_id + 1
        app.consumer_generation_id = epoch
        logger.debug(
            "assignment epoch %d (broker generation %s)",
            epoch,
            thread._ensure_consumer()._coordinator.generation,
        )
        await thread.on_partitions_assigned(ensure_TPset(assigned), epoch)


class TunedConsumerMixin:
    """Makes a Faust consumer class create a `TunedConsumerThread` subclass."""

    thread_class: type[TunedConsumerThread] = TunedConsumerThread

    def _new_consumer_thread(self: Any) -> TunedConsumerThread:
        return self.thread_class(self, loop=self.loop, beacon=self.beacon)


def install(app: faust.App, fetch_max_wait_ms: int, quirks: BrokerQuirks) -> None:
    """Make `app`'s consumer use the tuned thread (idempotent; the last call wins)."""
    transport = app.transport
    base = transport.Consumer
    thread_class = type(
        "TunedConsumerThread",
        (TunedConsumerThread,),
        {
            "fetch_max_wait_ms": fetch_max_wait_ms,
            "fetch_high_watermarks": quirks.fetch_high_watermarks,
        },
    )
    listener = (
        EpochRebalanceListener if quirks.local_assignment_epochs else ConsumerRebalanceListener
    )
    if issubclass(base, TunedConsumerMixin):
        base.thread_class = thread_class
        base.RebalanceListener = listener
        return
    transport.Consumer = type(
        f"Tuned{base.__name__}",
        (TunedConsumerMixin, base),
        {"thread_class": thread_class, "RebalanceListener": listener},
    )
