"""The feature agent: `telemetry` -> windowed features in a RocksDB table -> `extracted-features`.

Thin on purpose: windows and features live in `windows.py`; this module moves bytes.
Its topics (`telemetry` and the repartition topic) are a batch route of
`streamapp.runtime.drain`: the fetch loop hands it lists of raw messages, past Faust's
per-message delivery. Per batch (up to `feature_batch_size` messages or
`feature_batch_within_s` seconds, `streamapp.runtime.batching`) it decodes, repartitions
misrouted records, and then, `CHUNK_ASSETS` assets at a time (a bound on memory),
applies the records to each asset's state, publishes closed windows and late records
and waits for the broker to have them, then writes each touched asset's state once
(one RocksDB put, one changelog record, acknowledged); after the last chunk each
partition's clock, then deletes the assets that expired, and only then acks the input
messages, so Faust never commits an offset whose effect is not in the changelog.
The state carries the offsets it has applied, so a redelivered record is skipped; the
partition clock carries them too, for the assets deleted since. A batch that straddles
a rebalance writes no further state and acks nothing (it comes again). See docs/design.md,
"Exactly-once state on an at-least-once broker" and "Silent assets expire".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

import faust
from faust.types import Message

from streamapp.contracts.codec import Invalid
from streamapp.contracts.deadletter import DeadLetter
from streamapp.contracts.telemetry import validate_telemetry
from streamapp.features import metrics
from streamapp.features.partition import ExpiryIndex, PartitionClock, clock_key
from streamapp.features.windows import (
    DIRECT,
    AssetState,
    BatchResult,
    FeatureExtractor,
    Record,
    WindowSpec,
)
from streamapp.runtime import drain, tables
from streamapp.runtime.batching import run_batches
from streamapp.runtime.produce import default_partition
from streamapp.runtime.raw import dead_letter_message, raw_topic, send_dead_letter
from streamapp.settings import Settings
from streamapp.state.cache import StateCache

logger = logging.getLogger(__name__)

TABLE_NAME = "feature-windows"
_HOMES_CACHED = 100_000
# Assets processed, published and written together: a batch of many distinct assets holds
# only this many assets' emissions and changelog records in memory at a time (the bound
# that keeps a worker under 1 GiB at 100,000 assets); silent assets expire in such chunks.
CHUNK_ASSETS = 2_000
ORIGIN_TOPIC = "streamapp.origin.topic"
ORIGIN_KEY = "streamapp.origin.key"
ORIGIN_PARTITION = "streamapp.origin.partition"
ORIGIN_OFFSET = "streamapp.origin.offset"
ORIGIN_TIMESTAMP = "streamapp.origin.timestamp"


def extractor_from(settings: Settings) -> FeatureExtractor:
    spec = WindowSpec.build(
        settings.window_kind,
        settings.window_size,
        settings.window_step,
        settings.window_grace,
        settings.window_idle_timeout,
    )
    return FeatureExtractor(spec, settings.feature_signals, settings.feature_names)


def repartition_topic_name(settings: Settings) -> str:
    return f"{settings.kafka_group_id}-features-repartition"


def register(app: faust.App, settings: Settings) -> None:
    """Attach the feature agent, its table and topics, and fetch-based recovery, to `app`."""
    app.sensors.add(metrics.RecoverySensor())
    extractor = extractor_from(settings)
    partitions = settings.topic_partitions
    max_bytes = settings.max_payload_bytes
    repartition_name = repartition_topic_name(settings)
    # internal: Faust's conductor then creates the repartition topic (and telemetry, if
    # missing) with `partitions` before subscribing. Otherwise the subscription makes the
    # broker auto-create it with its own default count (4 on Tansu): not co-partitioned
    # with the table, and forwarding to a home partition >= 4 fails ("Unrecognized
    # partition").
    # The route's queue has room for a whole batch while the previous one is applied
    # and acknowledged.
    batch_route = drain.route(
        app,
        (settings.topic_telemetry, repartition_name),
        depth=max(drain.ROUTE_DEPTH, -(-settings.feature_batch_size // drain.ROUTE_BATCH)),
    )
    source = drain.routed_topic(
        app,
        batch_route,
        partitions=partitions,
        internal=True,
    )
    repartition = app.topic(
        repartition_name,
        partitions=partitions,
        internal=True,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    output = raw_topic(app, settings.topic_features)
    dlq = raw_topic(app, settings.dlq_topic(settings.topic_telemetry))
    table = app.Table(
        TABLE_NAME,
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        help="Per-asset open windows (moment accumulators) and applied offsets.",
    )
    state = FeatureTable(table, extractor.spec, settings.feature_state_cache_assets)
    open_windows: dict[str, int] = {}
    homes: dict[bytes, int] = {}

    @app.on_partitions_revoked.connect
    async def _forget_states(app: faust.App, revoked: object, **kwargs: object) -> None:
        state.forget()
        open_windows.clear()

    @app.on_partitions_assigned.connect
    async def _forget_states_again(app: faust.App, assigned: object, **kwargs: object) -> None:
        state.forget()

    @app.agent(source, name="features")
    async def extract_features(stream: faust.StreamT) -> None:
        """Windowed features per asset, exactly once in effect (see module docstring).

        The stream subscribes the topics; their messages arrive on the batch route.
        """
        await run_batches(
            app,
            batch_route.queue,
            settings.feature_batch_size,
            settings.feature_batch_within_s,
            apply_batch,
            state.forget,
        )

    async def apply_batch(messages: list[Message]) -> None:
        """Decode, apply, publish and acknowledge-ready one batch (see module docstring)."""
        generation = app.consumer_generation_id
        by_asset: dict[str, list[Record]] = {}
        last_message: dict[str, Message] = {}
        sent: list[Awaitable[Any]] = []
        clocks: dict[int, PartitionClock] = {}  # each partition's, advanced by this batch
        anchors: dict[int, Message] = {}  # a message of each partition: table access
        guarded = 0
        for message in messages:
            record = _decode(message, homes, repartition_name, partitions, max_bytes)
            if isinstance(record, Record):
                partition = message.partition
                clock = clocks.get(partition)
                if clock is None:
                    clock = clocks[partition] = state.clock(message).copy()
                anchors[partition] = message
                done = state.clock(message).offsets.get(record.source, -1)
                clock.advance(record.telemetry.ts_ms, record.source, record.offset)
                if record.offset <= done:
                    guarded += 1  # applied before, and its asset may have expired since
                    continue
                record.stream_ms = clock.stream_ms
                by_asset.setdefault(record.asset_id, []).append(record)
                last_message[record.asset_id] = message
            elif isinstance(record, tuple):
                sent.append(await _forward(repartition, message, *record))
                metrics.RECORDS.labels("forwarded").inc()
            else:
                metrics.RECORDS.labels(record).inc()
        if not clocks:
            await asyncio.gather(*sent)
            return
        assets = list(last_message)
        expired: list[str] = []
        for start in range(0, len(assets), CHUNK_ASSETS):
            chunk = assets[start : start + CHUNK_ASSETS]
            states: dict[str, AssetState] = {}
            for asset_id in chunk:
                found = state.load(asset_id, last_message[asset_id])
                if found is not None:
                    states[asset_id] = found
            result = extractor.process(
                {asset_id: by_asset[asset_id] for asset_id in chunk},
                states,
                {
                    asset_id: clocks[last_message[asset_id].partition].stream_ms
                    for asset_id in chunk
                },
            )
            state.remember(result)
            await _publish(result, output, dlq, sent)
            sent = []
            if app.consumer_generation_id != generation:
                # Rebalanced meanwhile: these messages come again, maybe to another worker.
                state.forget()
                return
            # Each chunk's states once its windows are published, then (below) the clocks,
            # whose offsets cover this batch, then the deletions: a crash between any two
            # leaves nothing a replay would get wrong.
            if result.states:
                await tables.write(
                    table,
                    {
                        asset_id.encode(): (new.to_bytes(), last_message[asset_id])
                        for asset_id, new in result.states.items()
                    },
                )
            for asset_id, new in result.states.items():
                state.index(last_message[asset_id].partition).set(asset_id, new.watermark)
                open_windows[asset_id] = extractor.open_windows(new)
            expired += result.expired
            metrics.REPLAYED_EVENTS.inc(result.replayed)
            metrics.RECORDS.labels("applied").inc(result.applied)
            metrics.RECORDS.labels("replayed").inc(result.replayed)
            metrics.RECORDS.labels("rejected").inc(len(result.rejected))
        await tables.write(
            table,
            {clock_key(p): (clock.to_bytes(), anchors[p]) for p, clock in clocks.items()},
        )
        state.clocks.update(clocks)
        await _forget_expired(expired, last_message)
        metrics.REPLAYED_EVENTS.inc(guarded)
        metrics.RECORDS.labels("replayed").inc(guarded)
        await _expire_silent(clocks, anchors, generation)

    async def _expire_silent(
        clocks: dict[int, PartitionClock], anchors: dict[int, Message], generation: int
    ) -> None:
        """Expire the silent assets the partition clocks have passed, `CHUNK_ASSETS` at a
        time (each chunk's windows are published before its states are deleted)."""
        while app.consumer_generation_id == generation:
            states: dict[str, AssetState] = {}
            stream_end: dict[str, float] = {}
            homes_of: dict[str, Message] = {}
            for partition, clock in clocks.items():
                index = state.index(partition)
                for asset_id in index.due(clock.stream_ms, CHUNK_ASSETS - len(states)):
                    found = state.load(asset_id, anchors[partition])
                    if found is None:
                        index.remove(asset_id)
                        continue
                    states[asset_id] = found
                    stream_end[asset_id] = clock.stream_ms
                    homes_of[asset_id] = anchors[partition]
            if not states:
                return
            result = extractor.process({}, states, stream_end)
            state.remember(result)
            await _publish(result, output, dlq, [])
            if app.consumer_generation_id != generation or not result.expired:
                state.forget()
                return
            await _forget_expired(result.expired, homes_of)

    async def _forget_expired(expired: list[str], homes_of: dict[str, Message]) -> None:
        """Delete the expired assets' states (table, changelog, cache, index, gauge)."""
        if expired:
            await tables.delete(
                table, {asset_id.encode(): homes_of[asset_id] for asset_id in expired}
            )
        for asset_id in expired:
            state.index(homes_of[asset_id].partition).remove(asset_id)
            open_windows.pop(asset_id, None)
        metrics.ASSETS_EXPIRED.inc(len(expired))
        metrics.WINDOWS_OPEN.set(sum(open_windows.values()))

    async def _publish(
        result: BatchResult,
        output: faust.TopicT,
        dlq: faust.TopicT,
        sent: list[Awaitable[Any]],
    ) -> None:
        """Send closed windows and late records, and wait until the broker holds them.

        Waiting here, before the state is written, is what keeps a crash from leaving
        a local state that has moved past a window whose emission never reached Kafka.
        Forwarded records (`sent`) are waited for too: their source offsets are acked
        after this batch.
        """
        for emission in result.emissions:
            sent.append(await output.send(key=emission.asset_id.encode(), value=emission.value))
        for message, reason in result.rejected:
            metrics.LATE_EVENTS.inc()
            await _dead_letter(dlq, message, reason)
        await asyncio.gather(*sent)
        if result.rejected:
            await app.producer.flush()
        now_ms = time.time() * 1000.0
        for emission in result.emissions:
            metrics.WINDOWS_EMITTED.inc()
            if emission.closed_at_ms == emission.closed_at_ms:
                metrics.FEATURE_LATENCY.observe(max(0.0, now_ms - emission.closed_at_ms) / 1000)


class FeatureTable:
    """The feature table and what this worker derives from it, for the partitions it owns.

    Decoded states (a bounded LRU), each partition's stored clock and expiry index. All
    of it is dropped after a rebalance or a failed batch and read again from the table,
    which (with its changelog) stays the truth.
    """

    def __init__(self, table: faust.Table, spec: WindowSpec, cache_size: int) -> None:
        self.table = table
        self.spec = spec
        self.cache: StateCache[AssetState] = StateCache(cache_size)
        self.clocks: dict[int, PartitionClock] = {}
        self.indexes: dict[int, ExpiryIndex] = {}

    def forget(self) -> None:
        self.cache.clear()
        self.clocks.clear()
        self.indexes.clear()

    def load(self, asset_id: str, message: Message) -> AssetState | None:
        """The asset's state (`message`: one of its partition's), None if it has none."""
        state = self.cache.get(asset_id)
        if state is None:
            stored = tables.read(self.table, asset_id.encode(), message)
            if stored is not None:
                state = AssetState.from_bytes(stored)
        return state

    def clock(self, message: Message) -> PartitionClock:
        """The stored clock of `message`'s partition."""
        clock = self.clocks.get(message.partition)
        if clock is None:
            stored = tables.read(self.table, clock_key(message.partition), message)
            clock = PartitionClock.from_bytes(stored) if stored is not None else PartitionClock()
            self.clocks[message.partition] = clock
        return clock

    def index(self, partition: int) -> ExpiryIndex:
        """The expiry index of an active partition, built from its stored states once."""
        index = self.indexes.get(partition)
        if index is None:
            items = tables.partition_items(self.table, partition)
            index = self.indexes[partition] = ExpiryIndex.scan(self.spec, items)
        return index

    def remember(self, result: BatchResult) -> None:
        for asset_id, state in result.states.items():
            self.cache.put(asset_id, state)
        for asset_id in result.expired:
            self.cache.pop(asset_id)


def _decode(
    message: Message,
    homes: dict[bytes, int],
    repartition_name: str,
    partitions: int,
    max_bytes: int,
) -> Record | tuple[bytes, int] | str:
    """A record for the extractor, `(asset key, home partition)` to forward it, or `invalid`.

    Invalid `telemetry` is skipped without a dead letter because the ingest agent,
    which reads the same topic, already dead-letters it with the validator's reason.
    `homes` caches each asset's home partition (murmur2 in pure Python is not cheap).
    """
    telemetry = validate_telemetry(message.value, message.key, max_bytes)
    if isinstance(telemetry, Invalid):
        return "invalid"
    asset_id = telemetry.asset_id
    kafka_ts_ms = (message.timestamp or 0.0) * 1000.0
    if message.topic == repartition_name:
        headers = dict(message.headers or ())
        origin = int(headers[ORIGIN_PARTITION])
        offset = int(headers[ORIGIN_OFFSET])
        return Record(asset_id, origin, offset, telemetry, kafka_ts_ms, message)
    asset_key = asset_id.encode()
    home = homes.get(asset_key)
    if home is None:
        if len(homes) >= _HOMES_CACHED:
            homes.clear()
        home = homes[asset_key] = default_partition(asset_key, partitions)
    if message.key == asset_key and message.partition == home:
        return Record(asset_id, DIRECT, message.offset, telemetry, kafka_ts_ms, message)
    return asset_key, home


async def _forward(
    repartition: faust.TopicT, message: Message, asset_key: bytes, home: int
) -> Awaitable[Any]:
    """Send a misrouted record to its asset's home partition, with its origin in headers."""
    return await repartition.send(
        key=asset_key,
        value=message.value,
        partition=home,
        headers=[
            (ORIGIN_TOPIC, message.topic.encode()),
            (ORIGIN_KEY, message.key or b""),
            (ORIGIN_PARTITION, str(message.partition).encode()),
            (ORIGIN_OFFSET, str(message.offset).encode()),
            (ORIGIN_TIMESTAMP, repr(message.timestamp).encode()),
        ],
    )


async def _dead_letter(dlq: faust.TopicT, message: Message, reason: str) -> None:
    """Dead-letter a rejected record under its original key and coordinates."""
    headers = dict(message.headers or ())
    if ORIGIN_PARTITION not in headers:
        await dead_letter_message(dlq, message, reason)
        return
    letter = DeadLetter(
        key=headers[ORIGIN_KEY],
        value=message.value,
        reason=reason,
        topic=headers[ORIGIN_TOPIC].decode(),
        partition=int(headers[ORIGIN_PARTITION]),
        offset=int(headers[ORIGIN_OFFSET]),
        timestamp=float(headers[ORIGIN_TIMESTAMP]),
    )
    await send_dead_letter(dlq, letter)
