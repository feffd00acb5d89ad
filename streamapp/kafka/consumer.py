"""The worker's Kafka consumer thread: fetch-based high watermarks and a short fetch wait.

* Changelog recovery. Faust reads each changelog partition up to the offset
  ListOffsets(latest) returns. The embedded broker answers that with the base offset of
  the last batch + 1, short of the true end whenever the batch holds several records,
  so recovery would stop early and silently lose table updates. This thread takes its
  high watermarks from Fetch responses instead (`streamapp.kafka.offsets.fetch_bounds`),
  right on that broker and on Apache Kafka alike.
* Fetch wait. Faust hard-codes `fetch_max_wait_ms=1500`. Apache Kafka answers a fetch as
  soon as one byte is there, but the embedded broker holds it for most of that wait
  even with records ready (fetches came back every ~770 ms at 1,000 msgs/s, which was
  the whole of the RUL agent's latency). `KAFKA_FETCH_MAX_WAIT_MS` bounds it on any
  broker; an idle worker then asks a little more often, which costs nothing.
* Assignment epochs. Faust fences everything a rebalance makes stale (fetched
  messages, batches in flight, the archive's and feature agent's per-assignment
  caches) by comparing each message's `generation_id` with the app's, which it takes
  from the broker's group generation. The embedded broker hands out the same
  generation for different assignments (a worker saw generation 1, a rebalance, then
  generation 1 again with other partitions), so stale messages passed as current and
  were acked or skipped against the new assignment: the chaos run committed offsets
  whose output was missing, or left offsets uncommitted for good. The app's
  generation is instead this process's count of assignments, new on every one
  whatever the broker says; Faust's own checks (recovery, table stores) compare it
  with itself, and aiokafka still commits with the broker's generation.

Installed on an app by `install(app, fetch_max_wait_ms)`.
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

logger = logging.getLogger(__name__)


class TunedConsumerThread(AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread with fetch-based high watermarks and fetch wait."""

    fetch_max_wait_ms: int = 1500

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms  # read when its fetcher starts
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        if self.consumer.in_transaction:
            return await super()._highwaters(partitions)
        bounds = await fetch_bounds(consumer, partitions)
        highwaters = {tp: end for tp, (_, end) in bounds.items()}
        logger.debug("fetch high watermarks: %s", highwaters)
        return highwaters


class EpochRebalanceListener(ConsumerRebalanceListener):
    """Gives every assignment a new generation id of this process (see module docstring)."""

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
    """Makes a Faust consumer class create a `TunedConsumerThread` subclass and number
    assignments with `EpochRebalanceListener`."""

    thread_class: type[TunedConsumerThread] = TunedConsumerThread
    RebalanceListener = EpochRebalanceListener

    def _new_consumer_thread(self: Any) -> TunedConsumerThread:
        return self.thread_class(self, loop=self.loop, beacon=self.beacon)


def install(app: faust.App, fetch_max_wait_ms: int) -> None:
    """Make `app`'s consumer use the tuned thread (idempotent; the last wait given wins)."""
    transport = app.transport
    base = transport.Consumer
    thread_class = type(
        "TunedConsumerThread", (TunedConsumerThread,), {"fetch_max_wait_ms": fetch_max_wait_ms}
    )
    if issubclass(base, TunedConsumerMixin):
        base.thread_class = thread_class
        return
    transport.Consumer = type(
        f"Tuned{base.__name__}", (TunedConsumerMixin, base), {"thread_class": thread_class}
    )
