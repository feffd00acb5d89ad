"""Batch routes of the drain: the conductor subscribes and acks a routed topic but never
delivers it, and a batch ack commits exactly what per-message acks would."""

from __future__ import annotations

import asyncio

import faust
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streamapp.kafka import drain


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
