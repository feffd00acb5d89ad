"""The worker's Kafka consumer thread: a short fetch wait, and Tansu's workarounds.

* Fetch wait. Faust hard-codes `fetch_max_wait_ms=1500`. Apache Kafka answers a fetch as
  soon as one byte is there, but Tansu holds it for most of that wait even with records
  ready (fetches came back every ~770 ms at 1,000 msgs/s, which was the whole of the
  RUL agent's latency). `KAFKA_FETCH_MAX_WAIT_MS` bounds it on any broker; an idle
  worker then asks a little more often, which costs nothing.
* On Tansu only (`streamapp.runtime.quirks`): changelog high watermarks from Fetch
  responses, since its ListOffsets(latest) falls short of the end; and the app's
  generation as this process's count of assignments, since its JoinGroup repeats a
  generation across different assignments and Faust fences stale messages by
  generation. Faust's own checks (recovery, table stores) compare that count with
  itself, and aiokafka still commits with the broker's generation.

Both live in `StreamConsumer`, the one consumer class of every app (with the batched
drain of `streamapp.runtime.drain`), installed by `install(app, fetch_max_wait_ms,
quirks)`; its per-app options are data (`ConsumerOptions`), not generated classes.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import aiokafka
import faust
from faust.transport.consumer import ensure_TPset
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, ConsumerRebalanceListener
from faust.types import TP, AppT

from streamapp.runtime.drain import BatchedDrainConsumer
from streamapp.runtime.offsets import fetch_bounds
from streamapp.runtime.quirks import BrokerQuirks

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConsumerOptions:
    """What an app's `StreamConsumer` and its thread do beyond Faust's defaults."""

    fetch_max_wait_ms: int = 1500
    fetch_high_watermarks: bool = False
    local_assignment_epochs: bool = False


_OPTIONS: weakref.WeakKeyDictionary[AppT, ConsumerOptions] = weakref.WeakKeyDictionary()


def consumer_options(app: AppT) -> ConsumerOptions:
    return _OPTIONS.get(app, ConsumerOptions())


class TunedConsumerThread(AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread with a fetch wait and, on Tansu, fetch-based
    high watermarks and assignment epochs."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if consumer_options(self.app).local_assignment_epochs:
            self._rebalance_listener = EpochRebalanceListener(self)

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Read when its fetcher starts.
        consumer._fetch_max_wait_ms = consumer_options(self.app).fetch_max_wait_ms
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        if not consumer_options(self.app).fetch_high_watermarks or self.consumer.in_transaction:
            return await super()._highwaters(partitions)
        bounds = await fetch_bounds(consumer, partitions)
        highwaters = {tp: end for tp, (_, end) in bounds.items()}
        logger.debug("event=fetch_high_watermarks highwaters=%s", highwaters)
        return highwaters


class EpochRebalanceListener(ConsumerRebalanceListener):
    """Gives every assignment a new generation id of this process (Tansu only)."""

    async def on_partitions_assigned(self, assigned: Any) -> None:
        thread = self._thread
        app = thread.app
        epoch = app.consumer_generation_id + 1
        app.consumer_generation_id = epoch
        logger.debug(
            "event=assignment_epoch epoch=%d broker_generation=%s",
            epoch,
            thread._ensure_consumer()._coordinator.generation,
        )
        await thread.on_partitions_assigned(ensure_TPset(assigned), epoch)


class StreamConsumer(BatchedDrainConsumer):
    """Faust's aiokafka consumer with the batched drain, the tuned thread and, on Tansu,
    assignment epochs."""

    def _new_consumer_thread(self) -> TunedConsumerThread:
        return TunedConsumerThread(self, loop=self.loop, beacon=self.beacon)


def install(app: faust.App, fetch_max_wait_ms: int, quirks: BrokerQuirks) -> None:
    """Make `app` create a `StreamConsumer` with these options (before its consumer
    exists; the last call wins)."""
    _OPTIONS[app] = ConsumerOptions(
        fetch_max_wait_ms=fetch_max_wait_ms,
        fetch_high_watermarks=quirks.fetch_high_watermarks,
        local_assignment_epochs=quirks.local_assignment_epochs,
    )
    cast(Any, app.transport).Consumer = StreamConsumer
