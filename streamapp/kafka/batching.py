"""Batched agents: take events in bulk, write table states in bulk, ack after the work.

Faust's `take_events` steps every event through the stream machinery (a generator
round trip, sensors and an ack each) and stops filling its buffer while a batch is
being handled, and `table[key] = value` queues each changelog record in the producer
buffer, which stalls every stream of the worker once 100 records are pending. An agent
that handles a batch at a time instead:

* reads its channel's queue directly (`take`), up to N events or T seconds after the
  first, and drops events of a previous consumer generation (a rebalance happened:
  they come again, maybe to another worker);
* writes each touched key once per batch straight into the table's store and sends the
  changelog records itself, waits for the broker, then records the changelog offsets
  as persisted, as Faust's own send callback does (`write_table`);
* acks its events only after the batch was handled (`run_batches`), so a crash
  mid-batch replays the batch from the committed offsets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.streams import _current_event
from faust.types import TP

from streamapp.kafka.events import make_current


async def take(queue: Any, max_: int, within: float) -> list[faust.EventT]:
    """Up to `max_` queued events, collected for at most `within` s after the first."""
    loop = asyncio.get_running_loop()
    events = [await queue.get()]
    deadline = loop.time() + within
    get = queue.get_nowait
    while len(events) < max_:
        while not queue.empty() and len(events) < max_:
            events.append(get())
        remaining = deadline - loop.time()
        if len(events) >= max_ or remaining <= 0:
            break
        try:
            events.append(await asyncio.wait_for(queue.get(), remaining))
        except TimeoutError:
            break
    return events


async def run_batches(
    app: faust.App,
    stream: faust.StreamT,
    max_: int,
    within: float,
    handle: Callable[[list[faust.EventT]], Awaitable[None]],
    forget: Callable[[], None],
) -> None:
    """The loop of a batched agent: take, drop stale events, `handle`, then ack.

    When `handle` raises, `forget` drops whatever the agent cached from the failed batch
    (neither in the changelog nor acked) and the worker stops, so that it replays from
    the committed offsets instead of Faust restarting the agent past the batch.
    """
    queue = stream.channel.queue
    while True:
        try:
            events = await take(queue, max_, within)
        except StopAsyncIteration:  # the app is stopping: the channel has closed
            return
        generation = app.consumer_generation_id
        if not app.flow_control.is_active():
            continue
        current = [event for event in events if event.message.generation_id == generation]
        if current:
            try:
                await handle(current)
            except Exception as exc:
                forget()
                await app.crash(exc)
                raise
        if app.consumer_generation_id == generation:
            consumer = app.consumer
            for event in current:
                event.message.ack(consumer)


async def write_table(table: faust.Table, writes: dict[bytes, tuple[bytes, faust.EventT]]) -> None:
    """Store `key -> value` in the partition of each key's event; wait for the changelog."""
    store = table.data
    changelog = table.changelog_topic.get_topic_name()
    producer = table.app.producer
    pending = []
    for key, (value, event) in writes.items():
        make_current(event)
        store[key] = value
        pending.append(
            await producer.send(changelog, key, value, event.message.partition, None, None)
        )
    _current_event.set(None)
    persisted: dict[int, int] = {}
    for metadata in await asyncio.gather(*pending):
        persisted[metadata.partition] = max(metadata.offset, persisted.get(metadata.partition, -1))
    for partition, offset in persisted.items():
        store.set_persisted_offset(TP(changelog, partition), offset)
