"""Batched agents: take raw messages in bulk, write table states in bulk, ack after the work.

Faust's per-message delivery (conductor, decode, `Event`, channel queue) and its
`take_events` (a generator round trip, sensors and an ack per event) cost more CPU than
the work of a batched agent, and `table[key] = value` queues each changelog record in
the producer buffer, which stalls every stream of the worker once 100 records are
pending. A batched agent instead reads the lists of raw messages its batch route
(`streamapp.runtime.drain`) delivers (`take`), up to N messages or T seconds after the
first, drops messages of a previous consumer generation (a rebalance happened: they come
again, maybe to another worker), and hands each batch's sends, state writes and acks to
a `streamapp.runtime.checkpoint.Checkpoint`, which `run_batches` commits (its module
docstring has the order, and why it is exactly once in effect).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import faust
from faust.types import Message

from streamapp.runtime import drain
from streamapp.runtime.checkpoint import AppEffects, Checkpoint
from streamapp.runtime.drain import untrack


async def take(queue: asyncio.Queue[list[Message]], max_: int, within: float) -> list[Message]:
    """The messages of the lists queued within `within` s after the first, until at least
    `max_` (whole lists: `run_batches` splits what goes beyond)."""
    loop = asyncio.get_running_loop()
    messages = list(await queue.get())
    deadline = loop.time() + within
    get = queue.get_nowait
    while len(messages) < max_:
        while not queue.empty() and len(messages) < max_:
            messages.extend(get())
        remaining = deadline - loop.time()
        if len(messages) >= max_ or remaining <= 0:
            break
        try:
            messages.extend(await asyncio.wait_for(queue.get(), remaining))
        except TimeoutError:
            break
    return messages


Finish = Callable[[], Awaitable[None]]
T = TypeVar("T")


async def run_batches(
    app: faust.App,
    queue: asyncio.Queue[list[Message]],
    max_: int,
    within: float,
    handle: Callable[[list[Message], Checkpoint], Awaitable[Finish | None]],
    forget: Callable[[], None],
) -> None:
    """The loop of a batched agent: take, drop stale messages, `handle` <= `max_` with the
    batch's checkpoint, then commit it.

    `handle` may return a `Finish`, the rest of the batch's work (say: inference in worker
    threads, then writes and sends). The loop then takes and handles the next batch while
    that runs, and runs each finish only after the previous batch was committed, so
    writes, sends and acks stay in batch order. A batch is committed once its finish
    completed.

    When `handle`, a finish or a commit raises, `forget` drops whatever the agent cached
    from the failed batch (neither in the changelog nor acked) and the worker stops, so
    that it replays from the committed offsets instead of Faust restarting the agent past
    it.
    """
    effects = AppEffects(app)

    async def or_stop(work: Awaitable[T]) -> T:
        """`work`'s result; if it raises, forget the batch and stop the worker."""
        try:
            return await work
        except Exception as exc:
            forget()
            await app.crash(exc)
            raise

    async def complete(finish: Finish, checkpoint: Checkpoint) -> None:
        await or_stop(finish())
        await or_stop(checkpoint.commit())

    rest: list[Message] = []
    running: asyncio.Task[None] | None = None  # the previous batch's finish and commit
    try:
        while True:
            if not rest:
                rest = await take(queue, max_, within)
            messages, rest = rest[:max_], rest[max_:]
            generation = app.consumer_generation_id
            if not app.flow_control.is_active():
                untrack(app.consumer, messages)
                untrack(app.consumer, rest)
                rest = []
                continue
            current = [message for message in messages if message.generation_id == generation]
            if len(current) < len(messages):
                untrack(app.consumer, [m for m in messages if m.generation_id != generation])
            checkpoint = Checkpoint(effects, current, generation)
            finish = await or_stop(handle(current, checkpoint)) if current else None
            if running is not None:
                await running  # raises what that batch raised
                running = None
            if finish is not None:
                running = asyncio.create_task(complete(finish, checkpoint))
            else:
                await or_stop(checkpoint.commit())
    finally:
        if running is not None:
            running.cancel()


class BatchHandler(Protocol):
    """The shape of every agent class: its batch logic and what it caches across batches."""

    def handle(self, batch: list[Message], checkpoint: Checkpoint) -> Awaitable[Finish | None]:
        """Apply one batch through its checkpoint (may return the rest of the work)."""
        ...

    def forget(self) -> None:
        """Drop what a failed batch may have left in the caches."""
        ...


def batch_agent(
    app: faust.App,
    name: str,
    route: drain.BatchRoute,
    handler: BatchHandler,
    max_: int,
    within: float,
    help: str,
    before: Callable[[], Awaitable[None]] | None = None,
    **topic_options: Any,
) -> None:
    """Run `handler` as the Faust agent `name`: its stream subscribes the route's topics
    (a `RoutedTopic`, with `topic_options`), their messages come in batches from the
    route, and `run_batches` commits each; `before` runs once first; `help` is the
    agent's description (`faust agents`)."""

    async def batches(stream: faust.StreamT[Any]) -> None:
        if before is not None:
            await before()
        await run_batches(app, route.queue, max_, within, handler.handle, handler.forget)

    batches.__doc__ = help
    app.agent(drain.routed_topic(app, route, **topic_options), name=name)(batches)
