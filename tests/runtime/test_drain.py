"""Batch routes of the drain: the conductor subscribes and acks a routed topic but never
delivers it, and a batch ack commits exactly what per-message acks would."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import faust
from aiokafka.structs import ConsumerRecord
from faust.types import TP, Message
from faust.types.tuples import ConsumerMessage
from prometheus_client import REGISTRY

from streamapp.bench.harness import bench_app, create_topics
from streamapp.runtime import drain
from streamapp.runtime.consumer import install
from streamapp.runtime.produce import send_all
from streamapp.runtime.quirks import quirks_for
from streamapp.settings import Settings
from tests.support.acks import AckLog


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
    assert drain.routes_of(app) == {"telemetry": (route,), "tesla_V": (route,)}


def test_routes_sharing_a_topic_each_get_it() -> None:
    app = faust.App("drain-fanout-test", broker="kafka://127.0.0.1:1", store="memory://")
    archive = drain.route(app, ["telemetry", "tesla_V"])
    features = drain.route(app, ["telemetry", "repartition"], depth=10)
    assert drain.routes_of(app) == {
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


def stream_app(name: str) -> faust.App:
    """A bare app (never started) with the stream consumer installed."""
    app = faust.App(name, broker="kafka://127.0.0.1:1", store="memory://")
    install(app, 1500, quirks_for(Settings(streamapp_broker="kafka")))
    return app


def fenced_consumer(name: str) -> tuple[faust.App, drain.BatchRoute, Any, list[int]]:
    """An app's batched-drain consumer (never started) whose seeks land at offset 5."""
    app = stream_app(name)
    route = drain.route(app, ["t"])
    consumer = app.consumer
    seeks: list[int] = []

    async def seek_to_committed() -> dict[TP, int]:
        seeks.append(consumer.seeks)
        return {TP("t", 0): 5}

    consumer.seek_to_committed = seek_to_committed
    consumer.assignment = lambda: {TP("t", 0)}
    return app, route, consumer, seeks


def test_a_fetch_that_a_seek_overtook_is_dropped_and_sought_again() -> None:
    """A fetch's records may come from before the seek (they would count as an offset gap
    and commit over unprocessed messages) or from after it (dropped, they would be
    skipped): none is delivered, and the drain seeks again so that they come again."""
    _, route, consumer, seeks = fenced_consumer("drain-seek-fence-test")
    stale = ConsumerRecord("t", 0, 40, 0, 0, b"k", b"v", None, 1, 1, [])

    async def fetch_overtaken_by_a_seek(timeout: float) -> tuple[Any, set[TP]]:
        await consumer.perform_seek()  # recovery, while the fetch was out
        return {TP("t", 0): [stale]}, {TP("t", 0)}

    consumer._wait_next_records = fetch_overtaken_by_a_seek
    asyncio.run(consumer._deliver(race_each=False))

    assert route.queue.empty()
    assert seeks == [1, 3]
    assert consumer._read_offset[TP("t", 0)] == 5


def test_a_seek_stops_the_delivery_of_the_fetch_it_overtook() -> None:
    app, _, consumer, _ = fenced_consumer("drain-seek-stop-test")
    records = {TP("t", 0): [ConsumerRecord("t", 0, 40, 0, 0, b"k", b"v", None, 1, 1, [])]}

    async def seek() -> None:
        await consumer.perform_seek()

    before = consumer.seeks
    asyncio.run(seek())
    assert list(consumer._fetched(records, None, app.consumer_generation_id, before)) == []


def test_a_partition_with_nothing_committed_is_sought_back_to_its_first_offset() -> None:
    """aiokafka's seek to the committed offset leaves such a partition where the fetcher
    is, past whatever was fetched and dropped; and Faust would commit from the first
    offset acked, whatever it is."""
    app = stream_app("drain-first-offset-test")
    drain.route(app, ["t"])
    consumer = app.consumer
    tp = TP("t", 0)
    sought: list[dict[TP, int]] = []

    async def seek_to_committed() -> dict[TP, int | None]:
        return {tp: None}

    async def earliest_offsets(*partitions: TP) -> dict[TP, int]:
        return dict.fromkeys(partitions, 0)

    async def seek_wait(offsets: dict[TP, int]) -> None:
        sought.append(offsets)

    consumer.seek_to_committed = seek_to_committed
    consumer.earliest_offsets = earliest_offsets
    consumer.seek_wait = seek_wait
    consumer.assignment = lambda: {tp}
    app.topics.acks_enabled_for = lambda topic: True
    asyncio.run(consumer.perform_seek())

    assert sought == [{tp: 0}]
    consumer._acked[tp] = list(range(350, 400))  # fetched after records that were dropped
    assert consumer._new_offset(tp) is None
    consumer._acked[tp] = list(range(0, 10))
    assert consumer._new_offset(tp) == 10


def test_an_offset_jump_is_read_again_before_it_counts_as_a_gap() -> None:
    """A jump from a stale fetch is not a gap: Faust would commit over the offsets in
    between. The partition is read again from after the last delivered offset; only a
    jump the broker returns again (transaction markers, compaction) becomes a gap."""
    app, route, consumer, _ = fenced_consumer("drain-jump-test")
    tp = TP("t", 0)
    sought: list[tuple[TP, int]] = []
    fetches = [[5, 9, 10], [9, 10]]

    def record(offset: int) -> ConsumerRecord:
        return ConsumerRecord("t", 0, offset, 0, 0, b"k", b"v", None, 1, 1, [])

    async def fetch(timeout: float) -> tuple[Any, set[TP]]:
        return {tp: [record(offset) for offset in fetches.pop(0)]}, {tp}

    async def seek(partition: TP, offset: int) -> None:
        sought.append((partition, offset))

    consumer._wait_next_records = fetch
    consumer._seek = seek
    consumer.highwater = lambda partition: 11
    app.topics.acks_enabled_for = lambda topic: True
    consumer._read_offset[tp] = 4

    async def deliver_twice() -> list[list[int]]:
        delivered = []
        for _ in range(2):
            await consumer._deliver(race_each=False)
            delivered.append([m.offset for m in route.queue.get_nowait()])
        return delivered

    assert asyncio.run(deliver_twice()) == [[5], [9, 10]]
    assert sought == [(tp, 6)]
    assert sorted((i.begin, i.end) for i in consumer._gap[tp]) == [(6, 10)]


def test_routed_topics_reach_every_route_and_are_counted_once_per_fetch() -> None:
    """Each route of a topic gets its messages (counted once received, an event per route);
    a topic no route reads (a table's changelog) goes to the conductor's callback."""
    app = stream_app("drain-deliver-test")
    shared, alone = drain.route(app, ["t"]), drain.route(app, ["t", "u"])
    consumer = app.consumer
    conducted: list[tuple[str, int]] = []

    async def callback(message: Message) -> None:
        conducted.append((message.topic, message.offset))

    def record(topic: str, offset: int) -> ConsumerRecord:
        return ConsumerRecord(topic, 0, offset, 0, 0, b"k", b"v", None, 1, 1, [])

    async def fetch(timeout: float) -> tuple[Any, set[TP]]:
        found = {
            TP("t", 0): [record("t", offset) for offset in range(3)],
            TP("u", 0): [record("u", 0)],
            TP("c", 0): [record("c", 7)],
        }
        return found, set(found)

    consumer.callback = callback
    consumer._wait_next_records = fetch
    consumer.highwater = lambda partition: 10
    app.topics.acks_enabled_for = lambda topic: True

    def counted() -> dict[tuple[str, str], float]:
        return {
            (name, topic): REGISTRY.get_sample_value(name, {"topic": topic}) or 0.0
            for name in ("streamapp_faust_messages_received_total", "streamapp_faust_events_total")
            for topic in ("t", "u", "c")
        }

    before = counted()
    asyncio.run(consumer._deliver(race_each=False))
    after = counted()

    def taken(route: drain.BatchRoute) -> list[tuple[str, int]]:
        messages = []
        while not route.queue.empty():
            messages += route.queue.get_nowait()
        return sorted((m.topic, m.offset) for m in messages)

    assert taken(shared) == [("t", 0), ("t", 1), ("t", 2)]
    assert taken(alone) == [("t", 0), ("t", 1), ("t", 2), ("u", 0)]
    assert conducted == [("c", 7)]
    received, events = "streamapp_faust_messages_received_total", "streamapp_faust_events_total"
    moved = {key: after[key] - before[key] for key in after if after[key] != before[key]}
    assert moved == {(received, "t"): 3, (events, "t"): 6, (received, "u"): 1, (events, "u"): 1}
    assert {tp.topic for tp in app.monitor.stream_inbound_time} == {"t", "u"}


def test_a_routed_message_is_waited_for_until_every_route_acked_or_dropped_it() -> None:
    """A stop or a revocation waits for Faust's set of unacked messages: a routed message
    is in it from its delivery until its last route is done, acked or dropped."""
    app = stream_app("drain-track-test")
    acking, dropping = drain.route(app, ["t"]), drain.route(app, ["t"])
    consumer = app.consumer

    async def fetch(timeout: float) -> tuple[Any, set[TP]]:
        found = {TP("t", 0): [ConsumerRecord("t", 0, 0, 0, 0, b"k", b"v", None, 1, 1, [])]}
        return found, set(found)

    consumer._wait_next_records = fetch
    consumer.highwater = lambda partition: 10
    app.topics.acks_enabled_for = lambda topic: True
    asyncio.run(consumer._deliver(race_each=False))
    (message,) = acking.queue.get_nowait()
    assert dropping.queue.get_nowait() == [message]
    assert set(consumer._unacked_messages) == {message}
    drain.ack_all(consumer, [message])
    assert set(consumer._unacked_messages) == {message}
    drain.untrack(consumer, [message])
    assert not consumer._unacked_messages


def test_every_agent_of_the_worker_reads_a_batch_route(tmp_path: Path) -> None:
    """No agent is fed by the conductor: each one's topics are routed, so the conductor
    only hands over the tables' changelogs (to Faust's recovery and standbys)."""
    from streamapp.app import create_app

    app = create_app(Settings(data_dir=tmp_path))
    routes = drain.routes_of(app)
    for name, agent in app.agents.items():
        channel = agent.channel
        assert isinstance(channel, drain.RoutedTopic), name
        assert set(channel.topics) <= set(routes), name
    assert (len(routes["telemetry"]), len(routes["tesla_V"])) == (4, 2)
