"""The archiver's acks against a real moto S3 server (no broker: messages are built here).

A seek back to the committed offset can deliver a message again while its first copy
is buffered: that second copy must be acked only once the first is written, never at
once (the offset could commit before the write) and never not at all (the partition's
commits would stop once the first copy's ack was committed).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streamapp import s3
from streamapp.archive.agent import Archiver
from streamapp.archive.store import ArchiveStore
from tests.conftest import settings_from_env, stack_env
from tests.support.acks import AckLog

TOPIC = "telemetry-archiver-test"


def delivered(offset: int, generation: int = 1) -> ConsumerMessage:
    """A message as the drain hands it to the archive: one reference, the archive's."""
    message = ConsumerMessage(
        TOPIC, 0, offset, 1.7e9, 0, None, b"ENGINE-1", b"{}", None, tp=TP(TOPIC, 0)
    )
    message.generation_id = generation
    message.incref()
    return message


def archiver_of(s3_server: str) -> tuple[Archiver, AckLog, Any]:
    """An archiver on a fresh bucket, for an app in assignment 1 whose acks are logged."""
    consumer = AckLog()
    app = SimpleNamespace(
        consumer=consumer, consumer_generation_id=1, rebalancing=False, should_stop=False
    )
    settings = settings_from_env(stack_env("127.0.0.1:1", s3_server))
    return Archiver(app, settings), consumer, app  # type: ignore[arg-type]


def test_a_second_copy_is_acked_once_the_first_is_written(s3_server: str) -> None:
    archiver, consumer, _ = archiver_of(s3_server)
    settings = archiver.settings

    async def run() -> tuple[list[int], list[int], list[int]]:
        await s3.ensure_bucket(settings)
        async with ArchiveStore(settings) as store:
            archiver.store = store
            await archiver._archive([delivered(0), delivered(1), delivered(2)])
            await archiver._archive([delivered(1)])  # again, after a seek back
            before_write = list(consumer.acked)
            buffer = archiver.buffers.partitions[(TOPIC, 0)]
            await archiver._write(buffer.seal("test"))
            after_write = list(consumer.acked)
            await archiver._archive([delivered(2)])  # again, its first copy written
            return before_write, after_write, list(consumer.acked)

    before_write, after_write, at_end = asyncio.run(run())

    assert before_write == []
    assert after_write == [0, 1, 2, 1]
    assert at_end == [0, 1, 2, 1, 2]
    assert archiver.redelivered == {(TOPIC, 0): []}


def test_second_copies_of_an_old_assignment_are_dropped_unacked(s3_server: str) -> None:
    archiver, consumer, app = archiver_of(s3_server)
    settings = archiver.settings

    async def run() -> None:
        await s3.ensure_bucket(settings)
        async with ArchiveStore(settings) as store:
            archiver.store = store
            await archiver._archive([delivered(0), delivered(0)])
            app.consumer_generation_id = 2  # a rebalance: offset 0 comes again
            await archiver._archive([delivered(0, generation=2)])

    asyncio.run(run())

    assert consumer.acked == []
    assert archiver.redelivered == {}
    assert archiver.buffers.stats() == {(TOPIC, 0): (1, archiver.buffers.held_bytes)}
