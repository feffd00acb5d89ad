"""The archive agent: raw `telemetry` and `tesla_V` messages (and the battery agent's
`charge-sessions` and `battery-health`) -> S3 temp objects, exactly once.

Why it is exactly once (each step is tested in tests/archive):

* Faust commits a partition's offset only up to the first message not yet acked
  (`Consumer._new_offset`), and this agent acks a message only after the temp object
  holding it is written, one partition's objects strictly in offset order. So every
  committed offset is durable in S3; a crash replays only uncommitted messages.
* A replayed message whose offset S3 already holds is acked without a write: on the
  first message of a partition after an assignment the agent lists that partition's
  temp objects and resumes after the highest offset found (or sealed for writing by
  this process, whose writes retry until they land). No offset goes into two objects.
* After every rebalance Faust seeks each partition back to its committed offset and
  drops events of the old generation; the agent discards what it had buffered but not
  sealed (those messages come again) and re-reads S3 before resuming.
* A message delivered twice in one assignment (a seek back to the committed offset
  while its first copy was in flight) is acked once its first copy is written: acking
  it at once could commit the offset before that write, and never acking it would hold
  the partition's commits back for good once the first copy's ack was committed.

Throughput: the agent's topics are a batch route of `streamapp.runtime.drain`: the fetch
loop hands it lists of raw messages, skipping Faust's per-message delivery (conductor,
decode, `Event`, channel queue), and each message becomes its temp line with one string
format (`records.encode_message`) instead of a `json.dumps`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import faust

from streamapp.archive import metrics
from streamapp.archive.buffer import Batch, BufferLimits, WorkerBuffers
from streamapp.archive.records import (
    encode_message,
    encode_object,
    parse_temp_key,
    temp_key,
    temp_partition_prefix,
)
from streamapp.archive.store import ArchiveStore
from streamapp.runtime import drain, signals
from streamapp.settings import Settings

logger = logging.getLogger(__name__)

TICK_S = 0.1
Key = tuple[str, int]


class ArchiveFailed(RuntimeError):
    """A temp object could not be written for a reason retrying cannot fix."""


class Archiver:
    """Buffers, seals and writes one worker's archive messages; acks only what is written."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        on_written: Callable[[Batch], None] | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.prefix = settings.s3_prefix.strip("/")
        self.buffers = WorkerBuffers(BufferLimits.from_settings(settings))
        self.on_written = on_written
        self.store: ArchiveStore | None = None
        self.generation: int | None = None
        self.resume: dict[Key, int] = {}
        self.last_seen: dict[Key, int] = {}
        self.sealed_last: dict[Key, int] = {}
        self.written_last: dict[Key, int] = {}
        self.redelivered: dict[Key, list[Any]] = {}
        self.queues: dict[Key, asyncio.Queue[Batch]] = {}
        self.writers: dict[Key, asyncio.Task[None]] = {}
        self.pending: dict[Key, int] = {}
        self.freed = asyncio.Event()
        self.failure: BaseException | None = None
        self.first_message_at: float | None = None

    # --- the agent loop -----------------------------------------------------------
    async def run(self, batches: asyncio.Queue[list[Any]]) -> None:
        """Archive the message lists the drain puts on `batches`, until cancelled."""
        async with ArchiveStore(self.settings) as store:
            self.store = store
            try:
                while True:
                    self._raise_failure()
                    await self._wait_for_memory()
                    try:
                        messages = await asyncio.wait_for(batches.get(), TICK_S)
                    except TimeoutError:
                        messages = []
                    await self._archive(messages)
                    self._seal_due()
            finally:
                for task in self.writers.values():
                    task.cancel()
                self.store = None

    async def _wait_for_memory(self) -> None:
        """Backpressure: take nothing while the worker holds its cap of bytes."""
        while self.buffers.at_cap:
            self._raise_failure()
            self._seal_due()
            self.freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.freed.wait(), TICK_S)

    async def _archive(self, messages: list[Any]) -> None:
        """Buffer one offset-ordered list of messages (one or more partitions)."""
        app = self.app
        buffers = self.buffers
        last_seen = self.last_seen
        now = time.monotonic()
        for message in messages:
            if buffers.at_cap:
                await self._wait_for_memory()
                now = time.monotonic()
            current = app.consumer_generation_id
            if message.generation_id != current:
                drain.untrack(app.consumer, [message])
                continue
            if current != self.generation:
                self._new_generation(current)
            key = message.tp
            offset = message.offset
            if offset <= last_seen.get(key, -1):
                self._ack_when_written(key, message)
                continue
            last_seen[key] = offset
            resume = self.resume.get(key)
            if resume is None:
                resume = self.resume[key] = await self._resume_point(key)
                now = time.monotonic()
            if offset <= resume:
                message.ack(app.consumer)
                metrics.SKIPPED.labels(message.topic).inc()
                continue
            if self.first_message_at is None:
                self.first_message_at = now
            buffers.add(
                message.topic,
                message.partition,
                offset,
                message.key,
                encode_message(message),
                message,
                now,
            )

    def _new_generation(self, generation: int) -> None:
        """After a rebalance: unsealed messages come again from the committed offset."""
        dropped = self.buffers.discard()
        if dropped:
            logger.info("event=rebalance_dropped_buffered messages=%d", dropped)
        self.generation = generation
        self.resume.clear()
        self.last_seen.clear()
        for messages in self.redelivered.values():
            drain.untrack(self.app.consumer, messages)
        self.redelivered.clear()

    def _ack_when_written(self, key: Key, message: Any) -> None:
        """Ack a second copy of a message once its first copy is in S3 (module docstring)."""
        if message.offset <= self.written_last.get(key, -1):
            message.ack(self.app.consumer)
        else:
            self.redelivered.setdefault(key, []).append(message)

    def _written(self, key: Key, last_offset: int) -> None:
        """The partition is in S3 up to `last_offset`: ack the second copies waiting for it."""
        self.written_last[key] = max(self.written_last.get(key, -1), last_offset)
        waiting = self.redelivered.get(key)
        if waiting:
            drain.ack_all(self.app.consumer, [m for m in waiting if m.offset <= last_offset])
            self.redelivered[key] = [m for m in waiting if m.offset > last_offset]

    async def _resume_point(self, key: Key) -> int:
        """Highest offset of this partition in S3 or sealed here for writing; -1 if none."""
        assert self.store is not None
        topic, partition = key
        highest = self.sealed_last.get(key, -1)
        for info in await self.store.list(temp_partition_prefix(self.prefix, topic, partition)):
            found = parse_temp_key(self.prefix, info.key)
            if found is not None:
                highest = max(highest, found.last_offset)
        return highest

    # --- sealing and writing -------------------------------------------------------
    def _seal_due(self) -> None:
        now = time.monotonic()
        # A rebalance or a stop waits for every fetched message to be acked: write what
        # is buffered now rather than at its flush interval.
        everything = (
            "rebalance" if self.app.rebalancing else "stop" if self.app.should_stop else None
        )
        if everything:
            due = [(b, everything) for b in self.buffers.partitions.values() if b.lines]
        else:
            due = self.buffers.due(now)
        for buffer, reason in due:
            self._enqueue(buffer.seal(reason))
        for (topic, partition), (count, nbytes) in self.buffers.stats().items():
            metrics.BUFFER_MESSAGES.labels(topic, str(partition)).set(count)
            metrics.BUFFER_BYTES.labels(topic, str(partition)).set(nbytes)
        metrics.HELD_BYTES.set(self.buffers.held_bytes)

    def _enqueue(self, batch: Batch) -> None:
        key = (batch.topic, batch.partition)
        self.sealed_last[key] = batch.last_offset
        queue = self.queues.get(key)
        if queue is None:
            queue = self.queues[key] = asyncio.Queue()
            self.writers[key] = asyncio.create_task(self._writer(key, queue))
        self.pending[key] = self.pending.get(key, 0) + 1
        queue.put_nowait(batch)

    async def _writer(self, key: Key, queue: asyncio.Queue[Batch]) -> None:
        """Writes one partition's batches one after the other, so acks stay in order."""
        while True:
            batch = await queue.get()
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failure = exc
                raise
            finally:
                self.pending[key] -= 1

    async def _write(self, batch: Batch) -> None:
        assert self.store is not None
        started = time.monotonic()
        body = await asyncio.to_thread(encode_object, batch.lines)
        name = temp_key(
            self.prefix, batch.topic, batch.partition, batch.first_offset, batch.last_offset
        )
        await self.store.put(name, body, "application/gzip")
        drain.ack_all(self.app.consumer, batch.messages)
        self._written((batch.topic, batch.partition), batch.last_offset)
        self.buffers.released(batch)
        self.freed.set()
        metrics.MESSAGES.labels(batch.topic).inc(len(batch.messages))
        metrics.BYTES.labels("temp").inc(len(body))
        metrics.OBJECTS.labels("temp").inc()
        metrics.COMPRESSION_RATIO.labels("temp").set(batch.nbytes / max(1, len(body)))
        metrics.FLUSH_SECONDS.observe(time.monotonic() - started)
        if self.on_written is not None:
            self.on_written(batch)

    def _raise_failure(self) -> None:
        if self.failure is not None:
            raise ArchiveFailed(f"cannot write the archive: {self.failure!r}") from self.failure

    async def wait_written(self, keys: set[Key], timeout: float) -> bool:
        """Wait (bounded) until no batch of `keys` is waiting to be written."""
        deadline = time.monotonic() + timeout
        while any(self.pending.get(key, 0) for key in keys):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True


def register(
    app: faust.App, settings: Settings, on_written: Callable[[Batch], None] | None = None
) -> Archiver:
    """Attach the archive agent, its rebalance hook and the periodic compaction."""
    from streamapp.archive.compaction import archived_topics, compact_owned_topics

    batch_route = drain.route(app, archived_topics(settings))
    archiver = Archiver(app, settings, on_written)

    # Raw bytes (the route's default): the archive keeps messages as they came.
    @app.agent(drain.routed_topic(app, batch_route), name="archive")
    async def archive(stream: faust.StreamT) -> None:
        """Every message of `telemetry` and `tesla_V`, valid or not, and of the battery
        topics, into the temp layer.

        The stream subscribes the topics; their messages arrive on the batch route.
        """
        await archiver.run(batch_route.queue)

    async def finish_revoked_writes(revoked: set[Any]) -> None:
        """Let writes of revoked partitions land before another worker lists S3 for them."""
        keys = {(tp.topic, tp.partition) for tp in revoked}
        if not await archiver.wait_written(keys, settings.kafka_session_timeout_s / 2):
            logger.warning("event=revoked_with_writes_in_flight")

    signals.on_partitions_revoked(app, finish_revoked_writes)

    @app.timer(settings.compression_interval, name="archive-compaction")
    async def compaction() -> None:
        """Compact closed hours and apply retention for the topics whose partition 0 is ours."""
        await compact_owned_topics(app, settings)

    return archiver
