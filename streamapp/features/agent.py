"""The feature agent: `telemetry` -> windowed features in a RocksDB table -> `extracted-features`.

Thin on purpose: windows and features live in `windows/`; this module moves bytes.
Its topics (`telemetry` and the repartition topic) are a batch route of
`streamapp.runtime.drain`: the fetch loop hands it lists of raw messages, past Faust's
per-message delivery. Per batch (up to `feature_batch_size` messages or
`feature_batch_within_s` seconds, `streamapp.runtime.batching`) `FeatureAgent` decodes,
repartitions misrouted records, and then, `CHUNK_ASSETS` assets at a time (a bound on
memory), applies the records to each asset's state and flushes the chunk's closed
windows, late records and states through the batch's checkpoint; then each partition's
clock and the deletions of the assets that expired, then the silent assets' expiry
rounds. The checkpoint (`streamapp.runtime.checkpoint`) commits in the one order that
makes this exactly once in effect, acks last, and drops a batch that straddles a
rebalance. The state carries the offsets it has applied, so a redelivered record is
skipped; the partition clock carries them too, for the assets deleted since. See
docs/design.md, "Exactly-once state on an at-least-once broker" and "Silent assets expire".
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import faust
from faust.types import TP, Message

from streamapp.assets.classes import AssetClass, AssetClasses
from streamapp.contracts.codec import Invalid
from streamapp.contracts.deadletter import DeadLetter
from streamapp.contracts.telemetry import validate_telemetry
from streamapp.features import metrics
from streamapp.features.partition import Expiry, ExpiryIndex, PartitionClock, clock_key
from streamapp.features.windows import (
    DIRECT,
    AssetState,
    BatchResult,
    FeatureExtractor,
    Profile,
    Record,
    build_windows,
)
from streamapp.runtime import drain, signals, tables
from streamapp.runtime.batching import batch_agent
from streamapp.runtime.checkpoint import Checkpoint
from streamapp.runtime.produce import HomePartitions
from streamapp.runtime.raw import raw_topic
from streamapp.runtime.tables import Table
from streamapp.settings import Settings
from streamapp.state.cache import StateCache

logger = logging.getLogger(__name__)

TABLE_NAME = "feature-windows"
# Assets processed, published and written together: a batch of many distinct assets holds
# only this many assets' emissions and changelog records in memory at a time (the bound
# that keeps a worker under 1 GiB at 100,000 assets); silent assets expire in such chunks.
CHUNK_ASSETS = 2_000
ORIGIN_TOPIC = "streamapp.origin.topic"
ORIGIN_KEY = "streamapp.origin.key"
ORIGIN_PARTITION = "streamapp.origin.partition"
ORIGIN_OFFSET = "streamapp.origin.offset"
ORIGIN_TIMESTAMP = "streamapp.origin.timestamp"


def extractor_from(settings: Settings, classes: AssetClasses | None = None) -> FeatureExtractor:
    """The extractor of the worker: a profile per asset class (`ASSET_CLASSES`), each
    record classified by its asset id, metadata, source topic and signal names."""
    classes = classes or AssetClasses.load(settings.asset_classes)
    profiles = {
        name: profile_of(asset_class, settings) for name, asset_class in classes.classes.items()
    }
    topic = settings.topic_telemetry

    def classify(record: Record) -> str:
        telemetry = record.telemetry
        metadata = telemetry.metadata
        source = metadata.get("source_topic")
        return classes.classify(
            telemetry.asset_id,
            metadata,
            source if isinstance(source, str) else topic,
            telemetry.signals,
            telemetry.cycle is not None,
        )

    return FeatureExtractor(profiles, classes.default, classify)


def profile_of(asset_class: AssetClass, settings: Settings) -> Profile:
    """A class's windows, signals and features; what it leaves out, the settings give
    (windows: WINDOW_*; FEATURE_SIGNALS, FEATURE_NAMES). Its idle timeout is its own
    `idle_s`, else WINDOW_IDLE_TIMEOUT, raised to the least its windows allow (size +
    grace) for a class whose windows are longer."""
    shape = asset_class.windows
    if shape is None:
        windows = build_windows(
            settings.window_kind,
            settings.window_size,
            settings.window_step,
            settings.window_grace,
            settings.window_idle_timeout,
        )
    elif shape.idle_s is not None:
        windows = build_windows(shape.kind, shape.size_s, shape.step_s, shape.grace_s, shape.idle_s)
    else:
        windows = build_windows(shape.kind, shape.size_s, shape.step_s, shape.grace_s)
        idle_ms = max(settings.window_idle_timeout * 1000.0, windows.least_idle_ms)
        windows = replace(windows, idle_ms=idle_ms)
    return Profile.of(
        windows,
        asset_class.signals or settings.feature_signals,
        asset_class.features or settings.feature_names,
        asset_class.name,
        asset_class.bare_signal,
    )


def repartition_topic_name(settings: Settings) -> str:
    return f"{settings.kafka_group_id}-features-repartition"


class FeatureAgent:
    """Applies the batches of the `features` agent to the feature table (module docstring).

    Collaborators: the extractor, the table, the topics it sends to; caches of its own
    (each asset's home partition, its open-window count for the gauge), and the decoded
    states and partition clocks of `FeatureTable`, dropped at every rebalance.
    """

    def __init__(
        self,
        settings: Settings,
        extractor: FeatureExtractor,
        table: Table,
        output: faust.TopicT,
        repartition: faust.TopicT,
        dlq: faust.TopicT,
    ) -> None:
        self.extractor = extractor
        self.table = table
        self.state = FeatureTable(table, extractor, settings.feature_state_cache_assets)
        self.output = output
        self.repartition = repartition
        self.dlq = dlq
        self.repartition_name = repartition_topic_name(settings)
        self.max_bytes = settings.max_payload_bytes
        self.open_windows: dict[str, int] = {}
        self.homes = HomePartitions(settings.topic_partitions)

    def forget(self) -> None:
        """Drop what was read from the table (a failed batch may have changed it)."""
        self.state.forget()

    async def on_revoked(self, revoked: set[TP]) -> None:
        """Partitions revoked: their states and open windows are another worker's now."""
        self.state.forget()
        self.open_windows.clear()

    async def on_assigned(self, assigned: set[TP]) -> None:
        """Partitions assigned: the table may have recovered other states meanwhile."""
        self.state.forget()

    async def handle(self, messages: list[Message], checkpoint: Checkpoint) -> None:
        """Decode, forward, apply and flush one batch, a chunk of assets at a time, then
        the partition clocks and deletions, then the silent assets' expiry (module
        docstring); the batch driver commits the rest."""
        by_asset: dict[str, list[Record]] = {}
        last_message: dict[str, Message] = {}
        clocks: dict[int, PartitionClock] = {}  # each partition's, advanced by this batch
        anchors: dict[int, Message] = {}  # a message of each partition: table access
        guarded = 0
        state = self.state
        for message in messages:
            record = self._decode(message)
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
                await self._forward(checkpoint, message, *record)
                metrics.RECORDS.labels("forwarded").inc()
            else:
                metrics.RECORDS.labels(record).inc()
        if not clocks:
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
            result = self.extractor.process(
                {asset_id: by_asset[asset_id] for asset_id in chunk},
                states,
                {
                    asset_id: clocks[last_message[asset_id].partition].stream_ms
                    for asset_id in chunk
                },
            )
            state.remember(result)
            await self._publish(result, checkpoint)
            for asset_id, new in result.states.items():
                checkpoint.write(
                    self.table, asset_id.encode(), new.to_bytes(), last_message[asset_id]
                )
            if not await checkpoint.flush():
                state.forget()
                return
            for asset_id, new in result.states.items():
                index = state.index(last_message[asset_id].partition)
                index.set(asset_id, new.watermark, new.asset_class)
                self.open_windows[asset_id] = self.extractor.open_windows(new)
            expired += result.expired
            metrics.REPLAYED_EVENTS.inc(result.replayed)
            metrics.RECORDS.labels("applied").inc(result.applied)
            metrics.RECORDS.labels("replayed").inc(result.replayed)
            metrics.RECORDS.labels("rejected").inc(len(result.rejected))
        metrics.REPLAYED_EVENTS.inc(guarded)
        metrics.RECORDS.labels("replayed").inc(guarded)
        # The clocks, whose offsets cover this batch, after the asset states; the
        # deletions last (the checkpoint's stage 2 writes before it deletes).
        for partition, clock in clocks.items():
            checkpoint.write(self.table, clock_key(partition), clock.to_bytes(), anchors[partition])
        if not await self._delete(expired, last_message, checkpoint):
            return
        state.clocks.update(clocks)
        self._expired(expired, last_message)
        await self._expire_silent(clocks, anchors, checkpoint)

    async def _expire_silent(
        self, clocks: dict[int, PartitionClock], anchors: dict[int, Message], checkpoint: Checkpoint
    ) -> None:
        """Expire the silent assets the partition clocks have passed, `CHUNK_ASSETS` at a
        time (each chunk's windows are published before its states are deleted)."""
        state = self.state
        while checkpoint.current:
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
            result = self.extractor.process({}, states, stream_end)
            state.remember(result)
            await self._publish(result, checkpoint)
            if not result.expired:
                state.forget()
                return
            if not await self._delete(result.expired, homes_of, checkpoint):
                return
            self._expired(result.expired, homes_of)

    async def _delete(
        self, expired: list[str], homes_of: dict[str, Message], checkpoint: Checkpoint
    ) -> bool:
        """Flush the deletion of the expired assets' states (and what else was collected);
        False, with the cached states dropped, if the batch was dropped instead."""
        for asset_id in expired:
            checkpoint.delete(self.table, asset_id.encode(), homes_of[asset_id])
        if await checkpoint.flush():
            return True
        self.state.forget()
        return False

    def _expired(self, expired: list[str], homes_of: dict[str, Message]) -> None:
        """Forget the deleted assets (index, open windows), count them, update the gauge."""
        for asset_id in expired:
            self.state.index(homes_of[asset_id].partition).remove(asset_id)
            self.open_windows.pop(asset_id, None)
        metrics.ASSETS_EXPIRED.inc(len(expired))
        metrics.WINDOWS_OPEN.set(sum(self.open_windows.values()))

    async def _publish(self, result: BatchResult, checkpoint: Checkpoint) -> None:
        """Send closed windows and late records, and wait until the broker holds them
        (and the forwards sent before), so the emissions are timed as delivered."""
        for emission in result.emissions:
            await checkpoint.send(self.output, emission.asset_id.encode(), emission.value)
        for message, reason in result.rejected:
            metrics.LATE_EVENTS.inc()
            await checkpoint.dead_letter(self.dlq, origin_dead_letter(message, reason))
        await checkpoint.delivered()
        now_ms = time.time() * 1000.0
        for emission in result.emissions:
            metrics.WINDOWS_EMITTED.inc()
            if emission.closed_at_ms == emission.closed_at_ms:
                metrics.FEATURE_LATENCY.observe(max(0.0, now_ms - emission.closed_at_ms) / 1000)

    def _decode(self, message: Message) -> Record | tuple[bytes, int] | str:
        """A record for the extractor, `(asset key, home partition)` to forward it, or
        `invalid`.

        Invalid `telemetry` is skipped without a dead letter because the ingest agent,
        which reads the same topic, already dead-letters it with the validator's reason.
        `homes` caches each asset's home partition (murmur2 in pure Python is not cheap).
        """
        telemetry = validate_telemetry(message.value, message.key, self.max_bytes)
        if isinstance(telemetry, Invalid):
            return "invalid"
        asset_id = telemetry.asset_id
        kafka_ts_ms = (message.timestamp or 0.0) * 1000.0
        if message.topic == self.repartition_name:
            headers = dict(message.headers or ())
            origin = int(headers[ORIGIN_PARTITION])
            offset = int(headers[ORIGIN_OFFSET])
            return Record(asset_id, origin, offset, telemetry, kafka_ts_ms, message)
        asset_key = asset_id.encode()
        home = self.homes.of(asset_key)
        if message.key == asset_key and message.partition == home:
            return Record(asset_id, DIRECT, message.offset, telemetry, kafka_ts_ms, message)
        return asset_key, home

    async def _forward(
        self, checkpoint: Checkpoint, message: Message, asset_key: bytes, home: int
    ) -> None:
        """Send a misrouted record to its asset's home partition, with its origin in headers."""
        await checkpoint.send(
            self.repartition,
            asset_key,
            message.value,
            partition=home,
            headers=[
                (ORIGIN_TOPIC, message.topic.encode()),
                (ORIGIN_KEY, message.key or b""),
                (ORIGIN_PARTITION, str(message.partition).encode()),
                (ORIGIN_OFFSET, str(message.offset).encode()),
                (ORIGIN_TIMESTAMP, repr(message.timestamp).encode()),
            ],
        )


def register(app: faust.App, settings: Settings) -> FeatureAgent:
    """Attach the feature agent, its table and topics, and fetch-based recovery, to `app`."""
    app.sensors.add(metrics.RecoverySensor())
    partitions = settings.topic_partitions
    # internal: Faust's conductor then creates the repartition topic (and telemetry, if
    # missing) with `partitions` before subscribing. Otherwise the subscription makes the
    # broker auto-create it with its own default count (4 on Tansu): not co-partitioned
    # with the table, and forwarding to a home partition >= 4 fails ("Unrecognized
    # partition").
    # The route's queue has room for a whole batch while the previous one is applied
    # and acknowledged.
    repartition_name = repartition_topic_name(settings)
    batch_route = drain.route(
        app,
        (settings.topic_telemetry, repartition_name),
        depth=max(drain.ROUTE_DEPTH, -(-settings.feature_batch_size // drain.ROUTE_BATCH)),
    )
    repartition = app.topic(
        repartition_name, partitions=partitions, internal=True, **drain.RAW_CODECS
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
    agent = FeatureAgent(settings, extractor_from(settings), table, output, repartition, dlq)
    signals.on_partitions_revoked(app, agent.on_revoked)
    signals.on_partitions_assigned(app, agent.on_assigned)

    batch_agent(
        app,
        "features",
        batch_route,
        agent,
        settings.feature_batch_size,
        settings.feature_batch_within_s,
        help="Windowed features per asset, exactly once in effect (see module docstring).",
        partitions=partitions,
        internal=True,
    )
    return agent


class FeatureTable:
    """The feature table and what this worker derives from it, for the partitions it owns.

    Decoded states (a bounded LRU), each partition's stored clock and expiry index. All
    of it is dropped after a rebalance or a failed batch and read again from the table,
    which (with its changelog) stays the truth.
    """

    def __init__(self, table: Table, expiry: Expiry, cache_size: int) -> None:
        self.table = table
        self.expiry = expiry
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
            index = self.indexes[partition] = ExpiryIndex.scan(self.expiry, items)
        return index

    def remember(self, result: BatchResult) -> None:
        for asset_id, state in result.states.items():
            self.cache.put(asset_id, state)
        for asset_id in result.expired:
            self.cache.pop(asset_id)


def origin_dead_letter(message: Message, reason: str) -> DeadLetter:
    """A rejected record's dead letter, under its original key and coordinates (counted
    when the checkpoint sends it)."""
    headers = dict(message.headers or ())
    if ORIGIN_PARTITION not in headers:
        return DeadLetter.from_message(message, reason)
    letter = DeadLetter(
        key=headers[ORIGIN_KEY],
        value=message.value,
        reason=reason,
        topic=headers[ORIGIN_TOPIC].decode(),
        partition=int(headers[ORIGIN_PARTITION]),
        offset=int(headers[ORIGIN_OFFSET]),
        timestamp=float(headers[ORIGIN_TIMESTAMP]),
    )
    return letter
