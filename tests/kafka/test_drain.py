"""Batch routes of the drain: the conductor subscribes and acks a routed topic but never
delivers it, and a batch ack commits exactly what per-message acks would."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust
from faust.types import TP, Message
from faust.types.tuples import ConsumerMessage

from streamapp.bench.harness import bench_app, create_topics
from streamapp.kafka import drain
from streamapp.kafka.produce import send_all
from streamapp.settings import Settings


class AckLog:
    """The consumer side of a final ack, as Faust's `Consumer.ack` (minus commit tracking)."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, message: ConsumerMessage) -> bool:
        message.acked = True
        self.acked.append(message.offset)
        return True


def messages(references: list[int]) -> list[ConsumerMessage]:
    found = []
    for offset, count in enumerate(references):
        one = ConsumerMessage("t", 0, offset, 0.0, 0, None, b"k", b"v", None, tp=TP("t", 0))
        one.incref(count)
        found.append(one)
    return found


def test_a_batch_ack_does_what_acking_each_message_does() -> None:
    references = [2, 1, 0, 3, 1]
    rounds = [[0, 1, 2], [0, 3], [0, 1, 3, 4], [3, 3]]
    batched, single = messages(references), messages(references)
    batched_log, single_log = AckLog(), AckLog()
    for chosen in rounds:
        drain.ack_all(batched_log, [batched[i] for i in chosen])
        for i in chosen:
            single[i].ack(single_log)
        assert batched_log.acked == single_log.acked
        assert [(m.refcount, m.acked) for m in batched] == [(m.refcount, m.acked) for m in single]
    assert batched_log.acked == [1, 2, 0, 4, 3]


def test_a_routed_topic_is_subscribed_and_acked_but_never_conducted() -> None:
    app = faust.App("drain-test", broker="kafka://127.0.0.1:1", store="memory://")
    route = drain.route(app, ["telemetry", "tesla_V"])
    topic = drain.routed_topic(app, route, value_type=bytes, value_serializer="raw")
    # Faust's agents iterate a clone and set its active partitions; a routed clone keeps none.
    app.topics.add(topic.clone(is_iterator=True, active_partitions=None))

    async def assign() -> set[str]:
        names = set(await app.topics._update_indices())
        await app.topics.on_partitions_assigned({TP("telemetry", 0), TP("tesla_V", 3)})
        return names

    assert asyncio.run(assign()) == {"telemetry", "tesla_V"}
    assert app.topics.acks_enabled_for("telemetry")
    assert app.topics._tp_to_callback == {}
    assert app.transport.Consumer.routes == {"telemetry": (route,), "tesla_V": (route,)}


def test_routes_sharing_a_topic_each_get_it() -> None:
    app = faust.App("drain-fanout-test", broker="kafka://127.0.0.1:1", store="memory://")
    archive = drain.route(app, ["telemetry", "tesla_V"])
    features = drain.route(app, ["telemetry", "repartition"], depth=10)
    assert app.transport.Consumer.routes == {
        "telemetry": (archive, features),
        "tesla_V": (archive,),
        "repartition": (features,),
    }
    assert features.queue.maxsize == 10


def test_routed_partitions_count_as_processing_for_the_stall_check(
    kafka_broker: str, tmp_path: Path
) -> None:
    """Faust logs "Stream has not started processing" for a partition with a backlog and
    no `stream_inbound_time`; a route's delivery sets it, as a stream's event would."""
    settings = Settings(kafka_bootstrap_servers=kafka_broker, kafka_group_id="drain-inbound")
    topic = "drain-inbound-test"
    partitions = 2
    values = [(f"k{i}".encode(), b"v", i % partitions) for i in range(20)]

    async def scenario() -> tuple[int, set[TP]]:
        await create_topics(settings, [topic], partitions)
        app = bench_app(settings, tmp_path, partitions)
        route = drain.route(app, [topic])
        routed = drain.routed_topic(app, route)
        taken: list[Message] = []

        @app.agent(routed)
        async def reader(stream: faust.StreamT) -> None:
            while True:
                batch = await route.queue.get()
                taken.extend(batch)
                drain.ack_all(app.consumer, batch)

        await app.start()
        try:
            await send_all(app, topic, values)
            deadline = asyncio.get_running_loop().time() + 60
            while len(taken) < len(values):
                assert asyncio.get_running_loop().time() < deadline, f"got {len(taken)}"
                await asyncio.sleep(0.1)
            return len(taken), set(app.monitor.stream_inbound_time)
        finally:
            await app.stop()

    count, inbound = asyncio.run(scenario())
    assert count == len(values)
    assert inbound == {TP(topic, p) for p in range(partitions)}
