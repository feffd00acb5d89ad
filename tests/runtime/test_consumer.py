"""The one consumer class and its options; assignment epochs: every assignment fences what
came before it, whatever the broker says."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import faust
from faust.types import TP

from streamapp.runtime import consumer
from streamapp.runtime.consumer import EpochRebalanceListener
from streamapp.runtime.quirks import quirks_for
from streamapp.settings import Settings


class RecordingThread:
    """The parts of Faust's consumer thread the listener uses; records each assignment."""

    def __init__(self, broker_generation: int) -> None:
        self.app = SimpleNamespace(consumer_generation_id=0)
        self.coordinator = SimpleNamespace(generation=broker_generation)
        self.assignments: list[tuple[set[TP], int]] = []

    def _ensure_consumer(self) -> Any:
        return SimpleNamespace(_coordinator=self.coordinator)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int) -> None:
        assert generation_id == self.app.consumer_generation_id  # set before Faust runs
        self.assignments.append((assigned, generation_id))


def test_a_repeated_broker_generation_still_gives_each_assignment_a_new_id() -> None:
    thread = RecordingThread(broker_generation=1)
    listener = EpochRebalanceListener(thread)  # type: ignore[arg-type]
    first, second = {TP("telemetry", 0)}, {TP("telemetry", 0), TP("telemetry", 1)}

    async def rebalance_twice() -> None:
        await listener.on_partitions_assigned(first)
        await listener.on_partitions_assigned(second)

    asyncio.run(rebalance_twice())

    assert thread.assignments == [(first, 1), (second, 2)]
    assert thread.app.consumer_generation_id == 2


def test_ids_keep_growing_past_a_broker_generation_that_goes_back() -> None:
    thread = RecordingThread(broker_generation=5)
    listener = EpochRebalanceListener(thread)  # type: ignore[arg-type]

    async def assign_then_broker_resets() -> None:
        await listener.on_partitions_assigned({TP("telemetry", 0)})
        thread.coordinator.generation = 0
        await listener.on_partitions_assigned({TP("telemetry", 0)})

    asyncio.run(assign_then_broker_resets())

    assert [generation for _, generation in thread.assignments] == [1, 2]


def test_every_app_gets_the_one_stream_consumer_with_its_own_options() -> None:
    kafka = faust.App("consumer-kafka", broker="kafka://127.0.0.1:1", store="memory://")
    tansu = faust.App("consumer-tansu", broker="kafka://127.0.0.1:1", store="memory://")
    consumer.install(kafka, 50, quirks_for(Settings(streamapp_broker="kafka")))
    consumer.install(tansu, 70, quirks_for(Settings(streamapp_broker="tansu")))
    assert kafka.transport.Consumer is tansu.transport.Consumer is consumer.StreamConsumer
    assert consumer.consumer_options(kafka) == consumer.ConsumerOptions(50, False, False)
    assert consumer.consumer_options(tansu) == consumer.ConsumerOptions(70, True, True)
