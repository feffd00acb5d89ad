"""A Faust consumer whose fetch loop waits once per fetched batch instead of per message.

faust-streaming's `Consumer._drain_messages` races every single message's delivery
against `suspend_flow` with `Service.wait_first`, which creates four tasks and runs
`asyncio.wait` per message: a profile of a bare agent showed that loop, not Kafka, as
the ceiling (about 5,000 msgs/s here). While the flow runs, this subclass races a
whole fetched batch against `suspend_flow` once (a rebalance still interrupts
delivery at once); while the flow is suspended (rebalance, table recovery) it hands
each conducted message (below) over exactly as upstream, one race per message. Gaps,
`broker_commit_every` and read offsets are handled as upstream, message by message;
upstream `getmany` (an async generator reading a partition's high watermark for every
message) is inlined as a plain generator that reads it once per fetch.
`streamapp.runtime.consumer.StreamConsumer` is the consumer class that carries it.

Every agent of the worker goes further: its topics are a `BatchRoute` (`route(app,
topics)`) and it handles raw messages in bulk (the ingest agents, the archive, the feature
and RUL agents). Messages of a routed topic skip the conductor (per message a lock,
flow-control and producer checks, a decode and an `Event`) and reach the route's queue in
offset-ordered lists of up to `ROUTE_BATCH`. Its topic, a `RoutedTopic`, is subscribed and
acked like any other but indexed for no partition, so the conductor never delivers it.
Several routes may share a topic (`telemetry` feeds the ingest validator, the archive and
the feature agent): each gets every message. Each routed message holds one reference per
route until that route's reader acks it, so an offset is committed only once every reader
is done with it; and each is tracked as the conductor tracks a message, so a stop or a
revocation waits (Faust's `wait_empty`) until every route acked or dropped it. Only the
topics no route reads go through the conductor, message by message as upstream: the
tables' changelogs, which Faust's recovery and standbys read.
A seek fences fetches: Faust's recovery resumes the flow before it seeks the stream
partitions back to their committed offsets, so a fetch may come back after the seek with
records from the old position. Delivered, the first of them would look like an offset
gap past the new read offset, and Faust would commit over the messages in between
without anyone processing them (faust-streaming#221). A fetch made before the last seek
is dropped; since it may equally have been made just after it (its records then skipped
by the fetcher), the drain seeks to the committed offsets once more, and the records
come again. And an offset jump is read again once before Faust may count the offsets
in between as a gap (on Apache Kafka, transaction markers and compaction leave such
gaps; a fetch from a stale position leaves one that is not real); it is a gap only if
the broker returns the same jump again.
The routed messages bypass Faust's sensors, so the drain counts them in
`streamapp.runtime.metrics` itself, once per fetch: each received once, and an event per
route. Once a route's queue took a fetch's messages, their partitions count as processing for
Faust's stall check (`Monitor.stream_inbound_time`, which only its streams set): without
it, a backlog longer than `stream_processing_timeout` (5 minutes) logged "Stream has not
started processing" errors every 10 s while the batches went on.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable, Iterator
from time import monotonic
from typing import Any

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import AppT, Message
from faust.types.tuples import ack_lock

from streamapp.runtime.metrics import EVENTS, MESSAGES_RECEIVED

_YIELD_EVERY = 100
ROUTE_BATCH = 2000
ROUTE_DEPTH = 4


class BatchRoute:
    """Where the batched drain puts the messages of some topics, a list at a time.

    The queue holds at most `depth` lists: a reader that stops taking (the archive at
    its memory cap) stops the drain, as a full Faust channel queue does.
    """

    def __init__(self, topics: frozenset[str], depth: int = ROUTE_DEPTH) -> None:
        self.topics = topics
        self.queue: asyncio.Queue[list[Message]] = asyncio.Queue(depth)


class BatchedDrainConsumer(AIOKafkaConsumer):
    """Faust's aiokafka consumer with the batched drain (see module docstring)."""

    seeks: int = 0  # seeks to the committed offsets so far: a fetch's fence

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # First offset of each partition that had nothing committed at the last seek.
        self.first_offsets: dict[Any, int] = {}
        # Per partition, the offset of the last jump read again (see `_deliver`).
        self.jumps_checked: dict[Any, int] = {}

    @property
    def routes(self) -> dict[str, tuple[BatchRoute, ...]]:
        return routes_of(self.app)

    def ack(self, message: Message) -> bool:
        """Faust's ack, except for a message a route dropped (`untrack`): forgotten, not
        acked, so its offset is read again."""
        if message in _DROPPED:
            with ack_lock:
                message.acked = True
                self._unacked_messages.discard(message)
            return False
        return bool(super().ack(message))

    async def perform_seek(self) -> None:
        """Seek every partition to its committed offset (counted for `_deliver`), and a
        partition that has none, or 0, to its first offset.

        aiokafka's seek to the committed offset skips a partition without one (or at 0)
        and leaves it where the fetcher is: past the records of a fetch that was dropped,
        which nobody would then process; and with nothing committed, Faust commits from
        whatever offset is acked first. So such a partition goes back to its first
        offset, which `_new_offset` then treats as its committed head.
        """
        self.seeks += 1  # and again when done: a fetch overlapping any part is fenced
        await super().perform_seek()
        starts: dict[Any, int] = {}
        if self.app.conf.consumer_auto_offset_reset == "earliest":
            acks_enabled_for = self.app.topics.acks_enabled_for
            uncommitted = [
                tp
                for tp in self.assignment()
                if not self._committed_offset.get(tp) and acks_enabled_for(tp.topic)
            ]
            if uncommitted:
                starts = dict(await self.earliest_offsets(*uncommitted))
                await self.seek_wait(starts)
        self.first_offsets = starts
        self.seeks += 1

    def _new_offset(self, tp: Any) -> int | None:
        """Faust's next offset to commit, but never past the first offset of a partition
        with nothing committed before that offset is acked (Faust checks the head only
        against a committed offset, and not against 0)."""
        if not self._committed_offset.get(tp):
            first = self.first_offsets.get(tp)
            acked = self._acked.get(tp)
            if first is not None and acked and min(acked) - first > 1 and not self._gap.get(tp):
                return None
        return super()._new_offset(tp)

    def _fetched(
        self: Any,
        records: Any,
        active_partitions: set[Any] | None,
        generation_id: int,
        seeks: int,
    ) -> Iterator[tuple[Any, Message]]:
        """Upstream `getmany`'s loop over one fetch, as a plain generator, reading each
        partition's high watermark (for the monitor) once per fetch, not per message;
        it stops at a rebalance or a seek (what is left comes again from the new offset)."""
        app = self.app
        buffered = self._buffered_partitions
        to_message = self._to_message
        track_end_offset = app.monitor.track_tp_end_offset
        tracked: set[Any] = set()
        for tp, record in self.scheduler.iterate(records):
            if (
                not self.flow_active
                or app.consumer_generation_id != generation_id
                or self.seeks != seeks
            ):
                return
            if active_partitions is None or tp in active_partitions or tp in buffered:
                if tp not in tracked:
                    tracked.add(tp)
                    track_end_offset(tp, self.highwater(tp))
                yield tp, to_message(tp, record)

    async def _deliver(self, race_each: bool) -> None:
        """Fetch once and deliver what came, as upstream `getmany` + drain loop do."""
        seeks = self.seeks
        records, active_partitions = await self._wait_next_records(1.0)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active or self.seeks != seeks:
            # Not flowing (as upstream), or a seek ran during the fetch (module docstring).
            try:
                await self.perform_seek()
            except Exception as exc:
                self.log.warning("exception performing seek %r", exc)
            return
        callback = self.callback
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        routes = self.routes
        pending: dict[BatchRoute, list[Message]] = {}
        routed: dict[Any, int] = {}  # messages routed, per partition (for the counters)
        reread: set[Any] = set()
        commit_every = self._commit_every
        track = self._unacked_messages.add
        since_yield = 0
        for tp, message in self._fetched(records, active_partitions, generation_id, seeks):
            since_yield += 1
            if since_yield > _YIELD_EVERY:
                await asyncio.sleep(0)
                since_yield = 0
            offset = message.offset
            read_offset = get_read_offset(tp)
            if read_offset is not None and offset < read_offset:
                continue
            if tp in reread:
                continue
            if read_offset and offset - read_offset > 1 and acks_enabled_for(message.topic):
                if self.jumps_checked.get(tp) != offset:
                    # Read the skipped offsets again before taking them for a gap.
                    self.jumps_checked[tp] = offset
                    reread.add(tp)
                    await self.seek(tp, read_offset + 1)
                    set_read_offset(tp, read_offset)  # still the last one delivered
                    continue
                await self._add_gap(tp, read_offset + 1, offset)
            if commit_every is not None and self._n_acked >= commit_every:
                self._n_acked = 0
                await self.commit()
            fanout = routes.get(message.topic)
            if fanout is not None:
                # Every reference first: a put below may let one reader ack the message
                # before it reaches the next route. No other task or thread holds the
                # message yet, so this skips `incref`'s lock (a lock per message).
                message.refcount += len(fanout)
                track(message)
                routed[tp] = routed.get(tp, 0) + 1
                for route in fanout:
                    batch = pending.get(route)
                    if batch is None:
                        batch = pending[route] = []
                    batch.append(message)
                    if len(batch) >= ROUTE_BATCH:
                        del pending[route]
                        await route.queue.put(batch)
            elif race_each:
                await self.wait_first(callback(message), self.suspend_flow.wait())
            else:
                await callback(message)
            set_read_offset(tp, offset)
        for route, batch in pending.items():
            await route.queue.put(batch)
        if routed:
            self._count(routed)

    def _count(self, routed: dict[Any, int]) -> None:
        """Count one fetch's routed messages (received once, an event per route), and
        mark their partitions as processing for Faust's stall check."""
        per_topic: dict[str, int] = {}
        for tp, count in routed.items():
            per_topic[tp.topic] = per_topic.get(tp.topic, 0) + count
        routes = self.routes
        for topic, count in per_topic.items():
            MESSAGES_RECEIVED.labels(topic).inc(count)
            EVENTS.labels(topic).inc(count * len(routes[topic]))
        monitor = self.app.monitor
        if monitor is not None:
            now = monotonic()
            for tp in routed:
                monitor.stream_inbound_time[tp] = now

    async def _drain_messages(self, fetcher: Any) -> None:
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                await self.sleep(0)
                if not self.should_stop:
                    if self.suspend_flow.is_set():
                        await self._deliver(race_each=True)
                    else:
                        await self.wait_first(
                            self._deliver(race_each=False), self.suspend_flow.wait()
                        )
                    self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)


_ROUTES: weakref.WeakKeyDictionary[AppT, dict[str, tuple[BatchRoute, ...]]] = (
    weakref.WeakKeyDictionary()
)


def routes_of(app: AppT) -> dict[str, tuple[BatchRoute, ...]]:
    """The routes of `app`'s topics (empty until `route` adds one)."""
    return _ROUTES.setdefault(app, {})


def route(app: faust.App, topics: Iterable[str], depth: int = ROUTE_DEPTH) -> BatchRoute:
    """A new `BatchRoute` for `topics` on `app`, beside any other route of the same
    topics; `depth`: lists its queue holds."""
    found = BatchRoute(frozenset(topics), depth)
    routes = routes_of(app)
    for topic in found.topics:
        routes[topic] = (*routes.get(topic, ()), found)
    return found


def ack_all(consumer: Any, messages: list[Message]) -> None:
    """`message.ack(consumer)` for each message, under one take of Faust's ack lock.

    The same steps as `Message.ack` (drop one reference; the last one marks the offset
    safe to commit through `consumer.ack`), without taking the lock twice per message.
    """
    with ack_lock:
        for message in messages:
            if not message.acked:
                refcount = message.refcount = max(message.refcount - 1, 0)
                if not refcount:
                    message.on_final_ack(consumer)


#: Messages a route dropped unapplied: their offsets must not be committed by this worker.
_DROPPED: weakref.WeakSet[Message] = weakref.WeakSet()


def untrack(consumer: Any, messages: list[Message]) -> None:
    """Drop a route's reference to messages it will not apply (a stop or a rebalance:
    they come again). A dropped message is never acked, so its offset is not committed
    even when the other routes that read it ack it; it stays tracked until they are done
    with it (a stop waits for the archive to write what it holds), then Faust forgets it.
    """
    with ack_lock:
        for message in messages:
            if message.acked:
                continue
            _DROPPED.add(message)
            refcount = message.refcount = max(message.refcount - 1, 0)
            if not refcount:
                message.acked = True
                consumer._unacked_messages.discard(message)


class RoutedTopic(faust.Topic):
    """A topic subscribed and acked like any other, whose messages only a route delivers.

    Its `active_partitions` is always empty, so the conductor indexes it for no
    partition and builds no per-message handler for it; the agent machinery sets the
    attribute on the clones it iterates, which is ignored here.
    """

    @property
    def active_partitions(self) -> set[Any]:
        return set()

    @active_partitions.setter
    def active_partitions(self, value: Any) -> None:
        """Ignored: see the class docstring."""


RAW_CODECS: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


def routed_topic(app: faust.App, batch_route: BatchRoute, **options: Any) -> faust.TopicT:
    """The topic of a route (a `RoutedTopic` over its topics) for the route's agent.

    Raw codecs by default: a route hands its agent the messages' bytes as fetched.
    """
    return RoutedTopic(app, topics=tuple(sorted(batch_route.topics)), **{**RAW_CODECS, **options})
