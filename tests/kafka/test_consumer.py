"""The worker's tuned consumer on the real embedded broker: fetch size capped, and a
record larger than the cap still read whole."""

from __future__ import annotations

import asyncio

import faust
from aiokafka import AIOKafkaProducer, TopicPartition

from streamapp.bench.harness import create_topics
from streamapp.kafka import consumer
from streamapp.settings import Settings

CAP = 64 * 1024


def test_fetch_size_is_capped_and_a_larger_record_still_comes(kafka_broker: str) -> None:
    settings = Settings(kafka_bootstrap_servers=kafka_broker)
    topic = "consumer-fetch-cap-test"
    values = [b"s" * 1000] * 200 + [b"B" * (5 * CAP)] + [b"t" * 1000] * 200

    async def scenario() -> tuple[int, int, list[bytes]]:
        await create_topics(settings, [topic], 1)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_broker, max_request_size=2**20)
        await producer.start()
        try:
            for value in values:
                await producer.send(topic, value, partition=0)
            await producer.flush()
        finally:
            await producer.stop()
        app = faust.App("consumer-test", broker=f"kafka://{kafka_broker}", web_enabled=False)
        consumer.install(app, 50, CAP)
        tuned = app.consumer._thread._create_worker_consumer(app.transport)
        await tuned.start()
        found: list[bytes] = []
        try:
            partition = TopicPartition(topic, 0)
            tuned.assign([partition])
            await tuned.seek_to_beginning(partition)
            while len(found) < len(values):
                batch = await asyncio.wait_for(tuned.getmany(timeout_ms=1000), 30)
                found.extend(record.value for records in batch.values() for record in records)
        finally:
            await tuned.stop()
        return tuned._fetch_max_bytes, tuned._fetch_max_wait_ms, found

    fetch_max_bytes, fetch_max_wait_ms, found = asyncio.run(scenario())
    assert (fetch_max_bytes, fetch_max_wait_ms) == (CAP, 50)
    assert found == values
