"""`send_all` on the real embedded broker: order, partitioning and offsets as `send` gives."""

from __future__ import annotations

import asyncio

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from streamapp.bench.harness import create_topics
from streamapp.runtime.produce import BATCH_BYTES, send_all
from streamapp.settings import Settings


def test_send_all_keeps_order_per_partition_and_partitions_by_key(kafka_broker: str) -> None:
    settings = Settings(kafka_bootstrap_servers=kafka_broker)
    topic = "produce-test"
    keys = [f"asset-{i % 37}".encode() for i in range(3000)]
    # Large enough values that several record batches per partition are needed.
    values = [f"{i:06d}".encode() * 200 for i in range(3000)]
    assert sum(map(len, values)) > 4 * BATCH_BYTES

    async def scenario() -> tuple[dict[int, int], dict[int, list[tuple[bytes, bytes]]]]:
        await create_topics(settings, [topic], 4)
        app = faust.App("produce-test", broker=f"kafka://{kafka_broker}", web_enabled=False)
        await app.producer.start()
        try:
            last = await send_all(
                app, topic, [(k, v, None) for k, v in zip(keys, values, strict=True)]
            )
        finally:
            await app.producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_broker, enable_auto_commit=False)
        await consumer.start()
        found: dict[int, list[tuple[bytes, bytes]]] = {}
        try:
            partitions = [TopicPartition(topic, p) for p in range(4)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            while sum(map(len, found.values())) < len(keys):
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
                for tp, records in batch.items():
                    found.setdefault(tp.partition, []).extend((r.key, r.value) for r in records)
        finally:
            await consumer.stop()
        return last, found

    last, found = asyncio.run(scenario())
    partitioner = DefaultPartitioner()
    expected: dict[int, list[tuple[bytes, bytes]]] = {}
    for key, value in zip(keys, values, strict=True):
        home = partitioner(key, [0, 1, 2, 3], [0, 1, 2, 3])
        expected.setdefault(home, []).append((key, value))
    assert found == expected
    assert last == {partition: len(records) - 1 for partition, records in expected.items()}
