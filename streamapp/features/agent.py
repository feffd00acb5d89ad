"""The feature agent: `telemetry` -> windowed features in a RocksDB table -> `extracted-features`.

Thin on purpose: windows and features live in `windows.py`; this module moves bytes.
Per batch (`take_events`) it decodes, repartitions misrouted records, applies the
batch to each asset's state, publishes closed windows and late records and waits for
the broker to have them, and only then writes each touched asset's state once (one
RocksDB put, one changelog record). The state carries the offsets it has applied, so
a redelivered record is skipped; see /work/notes/readme_features.md for the argument.
"""

from __future__ import annotations

import logging
import time
import weakref

import faust
from aiokafka.partitioner import murmur2
from faust.streams import _current_event

from streamapp.features import metrics
from streamapp.features.recovery import install as install_fetch_highwaters
from streamapp.features.windows import (
    DIRECT,
    AssetState,
    BatchResult,
    FeatureExtractor,
    Record,
    WindowSpec,
)
from streamapp.ingest.agent import dead_letter, raw_topic
from streamapp.ingest.deadletter import DeadLetter, send_dead_letter
from streamapp.ingest.metrics import DEAD_LETTERS, reason_kind
from streamapp.ingest.validation import Invalid, validate_telemetry
from streamapp.settings import Settings

logger = logging.getLogger(__name__)

TABLE_NAME = "feature-windows"
ORIGIN_TOPIC = "streamapp.origin.topic"
ORIGIN_KEY = "streamapp.origin.key"
ORIGIN_PARTITION = "streamapp.origin.partition"
ORIGIN_OFFSET = "streamapp.origin.offset"
ORIGIN_TIMESTAMP = "streamapp.origin.timestamp"


def home_partition(asset_id: bytes, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives a key: where state lives."""
    return (murmur2(asset_id) & 0x7FFFFFFF) % partitions


def extractor_from(settings: Settings) -> FeatureExtractor:
    spec = WindowSpec.build(
        settings.window_kind, settings.window_size, settings.window_step, settings.window_grace
    )
    return FeatureExtractor(spec, settings.feature_signals, settings.feature_names)


def repartition_topic_name(settings: Settings) -> str:
    return f"{settings.kafka_group_id}-features-repartition"


def register(app: faust.App, settings: Settings) -> None:
    """Attach the feature agent, its table and topics, and fetch-based recovery, to `app`."""
    install_fetch_highwaters(app)
    app.sensors.add(metrics.RecoverySensor())
    extractor = extractor_from(settings)
    partitions = settings.topic_partitions
    max_bytes = settings.max_payload_bytes
    repartition_name = repartition_topic_name(settings)
    source = app.topic(
        settings.topic_telemetry,
        repartition_name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
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
    # Faust derives table codecs from the types (json even for bytes); the state is binary.
    table.key_serializer = table.value_serializer = "raw"
    open_windows: dict[str, int] = {}
    # Decoded states of this worker's assets, valid until the next rebalance: the table
    # (and its changelog) stays the truth, the cache only saves decoding it every batch.
    cache: dict[str, AssetState] = {}

    @app.on_partitions_revoked.connect
    async def _forget_states(app: faust.App, revoked: object, **kwargs: object) -> None:
        cache.clear()
        open_windows.clear()

    @app.on_partitions_assigned.connect
    async def _forget_states_again(app: faust.App, assigned: object, **kwargs: object) -> None:
        cache.clear()

    @app.agent(source, name="features")
    async def extract_features(stream: faust.StreamT) -> None:
        """Windowed features per asset, exactly once in effect (see module docstring)."""
        async for events in stream.take_events(
            settings.feature_batch_size, within=settings.feature_batch_within_s
        ):
            by_asset: dict[str, list[Record]] = {}
            last_event: dict[str, faust.EventT] = {}
            for event in events:
                record = await _decode(event, repartition, repartition_name, partitions, max_bytes)
                if isinstance(record, Record):
                    by_asset.setdefault(record.asset_id, []).append(record)
                    last_event[record.asset_id] = event
                else:
                    metrics.RECORDS.labels(record).inc()
            if not by_asset:
                continue
            states = {}
            for asset_id, event in last_event.items():
                state = cache.get(asset_id)
                if state is None:
                    _use_partition_of(event)
                    stored = table.get(asset_id.encode())
                    if stored is not None:
                        state = AssetState.from_bytes(stored)
                if state is not None:
                    states[asset_id] = state
            result = extractor.process(by_asset, states)
            cache.update(result.states)
            await _publish(result, output, dlq)
            for asset_id, state in result.states.items():
                _use_partition_of(last_event[asset_id])
                table[asset_id.encode()] = state.to_bytes()
                open_windows[asset_id] = extractor.open_windows(state)
            _current_event.set(None)
            metrics.WINDOWS_OPEN.set(sum(open_windows.values()))
            metrics.REPLAYED_EVENTS.inc(result.replayed)
            metrics.RECORDS.labels("applied").inc(result.applied)
            metrics.RECORDS.labels("replayed").inc(result.replayed)
            metrics.RECORDS.labels("rejected").inc(len(result.rejected))

    async def _publish(result: BatchResult, output: faust.TopicT, dlq: faust.TopicT) -> None:
        """Send closed windows and late records, and wait until the broker holds them.

        Waiting here, before the state is written, is what keeps a crash from leaving
        a local state that has moved past a window whose emission never reached Kafka.
        """
        for emission in result.emissions:
            await output.send(key=emission.asset_id.encode(), value=emission.value)
        for event, reason in result.rejected:
            metrics.LATE_EVENTS.inc()
            await _dead_letter(dlq, event, reason)
        if result.emissions or result.rejected:
            await app.producer.flush()
        now_ms = time.time() * 1000.0
        for emission in result.emissions:
            metrics.WINDOWS_EMITTED.inc()
            if emission.closed_at_ms == emission.closed_at_ms:
                metrics.FEATURE_LATENCY.observe(max(0.0, now_ms - emission.closed_at_ms) / 1000)


def _use_partition_of(event: faust.EventT) -> None:
    """Make `event` this task's current event: Faust tables pick the partition from it.

    `take_events` fills its buffer in another task, so the agent's own context has no
    current event; only this task's context variable is set (never the stream's
    attribute, which the buffering task reads).
    """
    _current_event.set(weakref.ref(event))


async def _decode(
    event: faust.EventT,
    repartition: faust.TopicT,
    repartition_name: str,
    partitions: int,
    max_bytes: int,
) -> Record | str:
    """A record for the extractor, or why not: `forwarded` or `invalid`.

    Invalid `telemetry` is skipped without a dead letter because the ingest agent,
    which reads the same topic, already dead-letters it with the validator's reason.
    """
    message = event.message
    telemetry = validate_telemetry(message.value, message.key, max_bytes)
    if isinstance(telemetry, Invalid):
        return "invalid"
    asset_key = telemetry.asset_id.encode()
    kafka_ts_ms = (message.timestamp or 0.0) * 1000.0
    if message.topic == repartition_name:
        headers = dict(message.headers or ())
        origin = int(headers[ORIGIN_PARTITION])
        offset = int(headers[ORIGIN_OFFSET])
        return Record(telemetry.asset_id, origin, offset, telemetry, kafka_ts_ms, event)
    home = home_partition(asset_key, partitions)
    if message.key == asset_key and message.partition == home:
        return Record(telemetry.asset_id, DIRECT, message.offset, telemetry, kafka_ts_ms, event)
    await repartition.send(
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
    return "forwarded"


async def _dead_letter(dlq: faust.TopicT, event: faust.EventT, reason: str) -> None:
    """Dead-letter a rejected record under its original key and coordinates."""
    message = event.message
    headers = dict(message.headers or ())
    if ORIGIN_PARTITION not in headers:
        await dead_letter(dlq, event, reason)
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
    DEAD_LETTERS.labels(letter.topic, reason_kind(reason)).inc()
    await send_dead_letter(dlq, letter)
