"""The worker's Faust app: settings reach the Kafka client it creates (no broker needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from streamapp.app import create_app
from streamapp.runtime.consumer import EpochRebalanceListener
from streamapp.settings import Settings


def test_the_workers_kafka_consumer_takes_the_fetch_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, kafka_max_poll_records=123, kafka_fetch_max_wait_ms=77)

    async def created() -> tuple[int, int]:
        app = create_app(settings)
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return consumer._max_poll_records, consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()

    assert asyncio.run(created()) == (123, 77)


def test_on_tansu_alone_the_consumer_numbers_assignments_itself(tmp_path: Path) -> None:
    """Tansu repeats a group generation across rebalances; Apache Kafka does not."""

    async def listener(broker: str) -> object:
        settings = Settings(data_dir=tmp_path, streamapp_broker=broker)
        return create_app(settings).consumer._thread._rebalance_listener

    assert isinstance(asyncio.run(listener("tansu")), EpochRebalanceListener)
    assert not isinstance(asyncio.run(listener("kafka")), EpochRebalanceListener)


def test_the_workers_producer_gives_up_on_a_hung_publish_after_the_setting(
    tmp_path: Path,
) -> None:
    """Faust's own 1,200 s held a revoking worker for minutes when a produce hung."""

    async def created() -> float:
        app = create_app(Settings(data_dir=tmp_path, kafka_producer_request_timeout_s=7.5))
        producer = app.producer._new_producer()
        try:
            return producer._request_timeout_ms
        finally:
            await producer.stop()

    assert asyncio.run(created()) == 7500
