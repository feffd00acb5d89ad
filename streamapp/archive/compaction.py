"""Compaction of closed hours into Parquet, and retention of the temp layer.

An hour is closed when its end plus `compaction_grace` has passed (wall clock): by
then the buffers (flushed at least every `buffer_flush_interval`) hold nothing of it
in normal operation. Records arriving later for a compacted hour are merged on the
next pass: the pass reads the existing Parquet file, adds the new rows and rewrites
it. Rows are deduplicated on (topic, partition, offset) and sorted by ts, so running
a pass twice, or replaying the same temp objects, changes nothing.

An hour whose temp objects hold more than `archive_compaction_max_rows` records (an
upper bound read from their names) is compacted in shards of assets, re-reading the
objects for each shard, so a pass holds at most that many rows (about 1 KiB each) plus
one object and one asset's existing file; the files written are the same.

Per topic a state object (`{prefix}/state/compaction/{topic}.json`) records, for each
temp object, the hours it holds and which of them are compacted. It is written after
the Parquet files, so a crash in between only repeats idempotent work. Retention
deletes a temp object only when all its hours are compacted, it is older than
`temp_retention`, and it is not the newest object of its partition (the agent
resumes after that one).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust
import pyarrow as pa
import pyarrow.parquet as pq

from streamapp.archive import metrics
from streamapp.archive.records import (
    ArchivedRecord,
    compressed_key,
    decode_object,
    hour_label,
    hour_start_ms,
    parse_temp_key,
    temp_topic_prefix,
)
from streamapp.archive.store import ArchiveStore
from streamapp.contracts.codec import Invalid, parse_ts
from streamapp.contracts.telemetry import Telemetry, validate_telemetry
from streamapp.contracts.tesla import decode_tesla
from streamapp.settings import Settings

logger = logging.getLogger(__name__)

HOUR_MS = 3_600_000
META_COLUMNS = ("asset_id", "ts", "cycle", "topic", "partition", "offset", "kafka_timestamp")
SIGNAL_PREFIX = "signal_"


Decoder = Callable[[ArchivedRecord], "Row | Invalid"]


def decoder_for(topic: str, settings: Settings) -> tuple[Decoder, Identity]:
    """How a topic's records become rows, and what makes two rows one: telemetry through
    the shared validator (Tesla records normalised first), battery records by VIN."""
    max_bytes = settings.max_payload_bytes
    if topic in (settings.topic_charge_sessions, settings.topic_battery_health):
        return battery_row, by_record
    if topic == settings.topic_tesla:
        return lambda record: _row(record, decode_tesla(record.value, max_bytes)), by_offset
    return lambda record: _row(
        record, validate_telemetry(record.value, record.key, max_bytes)
    ), by_offset


def _row(record: ArchivedRecord, telemetry: Telemetry | Invalid) -> Row | Invalid:
    return telemetry if isinstance(telemetry, Invalid) else to_row(record, telemetry)


def battery_row(record: ArchivedRecord) -> Row | Invalid:
    """A `charge-sessions` or `battery-health` record as a row of its VIN at its end (a
    session) or week: numbers (booleans as 1/0) and text as columns, `end_of_life`
    flattened to `end_of_life_*`."""
    try:
        data = json.loads(record.value or b"")
    except ValueError:
        return Invalid("not JSON")
    vin = data.get("vin") if isinstance(data, dict) else None
    when = data.get("end", data.get("week")) if isinstance(data, dict) else None
    if not isinstance(vin, str) or not isinstance(when, str):
        return Invalid("no vin or time")
    ts_ms = parse_ts(when if "T" in when else f"{when}T00:00:00Z")
    if isinstance(ts_ms, str):
        return Invalid(ts_ms)
    flat = {k: v for k, v in data.items() if k not in ("vin", "end_of_life")}
    for name, value in (data.get("end_of_life") or {}).items():
        flat[f"end_of_life_{name}"] = value
    numbers: dict[str, float] = {}
    text: dict[str, str] = {}
    for name, value in flat.items():
        if isinstance(value, bool | int | float):
            numbers[name] = float(value)
        elif isinstance(value, str):
            text[name] = value
    return Row(
        vin,
        ts_ms,
        None,
        record.topic,
        record.partition,
        record.offset,
        record.timestamp_ms,
        numbers,
        text,
    )


def signal_column(name: str) -> str:
    """A signal's column; prefixed only where it would clash with a metadata column."""
    return (
        f"{SIGNAL_PREFIX}{name}" if name in META_COLUMNS or name.startswith(SIGNAL_PREFIX) else name
    )


@dataclass(slots=True)
class Row:
    """One valid message as a Parquet row."""

    asset_id: str
    ts_ms: float
    cycle: int | None
    topic: str
    partition: int
    offset: int
    kafka_timestamp_ms: int
    signals: dict[str, float]
    text: dict[str, str] = field(default_factory=dict)  # string columns (battery records)


Identity = Callable[[Row], tuple[Any, ...]]


def by_offset(row: Row) -> tuple[Any, ...]:
    """A telemetry row is its message: one per (topic, partition, offset)."""
    return (row.topic, row.partition, row.offset)


def by_record(row: Row) -> tuple[Any, ...]:
    """A battery record is its VIN and time: a re-emission (same bytes, a later offset)
    is the same row."""
    return (row.asset_id, row.ts_ms)


def to_row(record: ArchivedRecord, telemetry: Telemetry) -> Row:
    return Row(
        telemetry.asset_id,
        telemetry.ts_ms,
        telemetry.cycle,
        record.topic,
        record.partition,
        record.offset,
        record.timestamp_ms,
        telemetry.signals,
    )


def rows_to_table(rows: Iterable[Row], identity: Identity = by_offset) -> pa.Table:
    """Deduplicated on `identity`, sorted by ts then offset."""
    unique = {identity(row): row for row in rows}
    ordered = sorted(unique.values(), key=lambda r: (r.ts_ms, r.topic, r.partition, r.offset))
    names = sorted({signal_column(name) for row in ordered for name in row.signals})
    text_names = sorted({signal_column(name) for row in ordered for name in row.text})
    columns: dict[str, Any] = {
        "asset_id": pa.array([r.asset_id for r in ordered], pa.string()),
        "ts": pa.array([int(r.ts_ms) for r in ordered], pa.timestamp("ms", tz="UTC")),
        "cycle": pa.array([r.cycle for r in ordered], pa.int64()),
        "topic": pa.array([r.topic for r in ordered], pa.string()),
        "partition": pa.array([r.partition for r in ordered], pa.int32()),
        "offset": pa.array([r.offset for r in ordered], pa.int64()),
        "kafka_timestamp": pa.array(
            [r.kafka_timestamp_ms for r in ordered], pa.timestamp("ms", tz="UTC")
        ),
    }
    renamed = [{signal_column(k): v for k, v in r.signals.items()} for r in ordered]
    for name in names:
        columns[name] = pa.array([s.get(name) for s in renamed], pa.float64())
    texts = [{signal_column(k): v for k, v in r.text.items()} for r in ordered]
    for name in text_names:
        columns[name] = pa.array([t.get(name) for t in texts], pa.string())
    return pa.table(columns)


def table_to_rows(table: pa.Table) -> list[Row]:
    """Rows of an existing Parquet file, for merging late records."""
    data = table.to_pydict()
    value_names = [name for name in table.column_names if name not in META_COLUMNS]
    is_text = {name: pa.types.is_string(table.schema.field(name).type) for name in value_names}
    rows = []
    for i in range(table.num_rows):
        signals: dict[str, Any] = {}
        text: dict[str, Any] = {}
        for name in value_names:
            value = data[name][i]
            if value is not None:
                original = name[len(SIGNAL_PREFIX) :] if name.startswith(SIGNAL_PREFIX) else name
                (text if is_text[name] else signals)[original] = value
        rows.append(
            Row(
                data["asset_id"][i],
                data["ts"][i].timestamp() * 1000,
                data["cycle"][i],
                data["topic"][i],
                data["partition"][i],
                data["offset"][i],
                int(data["kafka_timestamp"][i].timestamp() * 1000),
                signals,
                text,
            )
        )
    return rows


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


@dataclass(slots=True)
class TopicState:
    """Per temp object: the hours it holds and those already compacted."""

    objects: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    @classmethod
    def loads(cls, body: bytes | None) -> TopicState:
        return cls(json.loads(body)["objects"]) if body else cls()

    def dumps(self) -> bytes:
        return json.dumps({"objects": self.objects}, sort_keys=True).encode()

    def pending_hours(self) -> set[int]:
        return {
            h for entry in self.objects.values() for h in entry["hours"] if h not in entry["done"]
        }

    def fully_compacted(self, key: str) -> bool:
        entry = self.objects.get(key)
        return entry is not None and set(entry["hours"]) <= set(entry["done"])


@dataclass(slots=True)
class CompactionReport:
    topic: str
    hours_compacted: list[str] = field(default_factory=list)
    rows_written: int = 0
    files_written: int = 0
    invalid_messages: int = 0
    temp_deleted: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "hours_compacted": self.hours_compacted,
            "rows_written": self.rows_written,
            "files_written": self.files_written,
            "invalid_messages": self.invalid_messages,
            "temp_deleted": self.temp_deleted,
        }


def state_key(prefix: str, topic: str) -> str:
    return f"{prefix}/state/compaction/{topic}.json"


def is_closed(hour_ms: int, now_ms: float, grace_s: float) -> bool:
    return hour_ms + HOUR_MS + grace_s * 1000 <= now_ms


class Compactor:
    """One compaction pass over one topic (see module docstring)."""

    def __init__(self, store: ArchiveStore, settings: Settings, topic: str) -> None:
        self.store = store
        self.settings = settings
        self.topic = topic
        self.prefix = store.prefix
        self.decode, self.identity = decoder_for(topic, settings)

    async def records(self, key: str) -> list[ArchivedRecord]:
        body = await self.store.get(key)
        return [] if body is None else await asyncio.to_thread(decode_object, body)

    def _valid(self, records: list[ArchivedRecord]) -> tuple[list[Row], int]:
        rows, invalid = [], 0
        for record in records:
            result = self.decode(record)
            if isinstance(result, Invalid):
                invalid += 1
            else:
                rows.append(result)
        return rows, invalid

    async def run(self, now_ms: float, only_hour: int | None = None) -> CompactionReport:
        report = CompactionReport(self.topic)
        objects = {
            info.key: info
            for info in await self.store.list(temp_topic_prefix(self.prefix, self.topic))
            if parse_temp_key(self.prefix, info.key) is not None
        }
        state = TopicState.loads(await self.store.get(state_key(self.prefix, self.topic)))
        state.objects = {k: v for k, v in state.objects.items() if k in objects}
        for key in sorted(set(objects) - set(state.objects)):
            rows, invalid = self._valid(await self.records(key))
            report.invalid_messages += invalid
            state.objects[key] = {
                "hours": sorted({hour_start_ms(r.ts_ms) for r in rows}),
                "done": [],
            }
        hours = sorted(
            h
            for h in state.pending_hours()
            if is_closed(h, now_ms, self.settings.compaction_grace)
            and (only_hour is None or h == only_hour)
        )
        for hour in hours:
            await self._compact_hour(hour, state, report)
        await self.store.put(state_key(self.prefix, self.topic), state.dumps(), "application/json")
        report.temp_deleted = await self._retention(objects, state, now_ms)
        return report

    async def _compact_hour(self, hour: int, state: TopicState, report: CompactionReport) -> None:
        """Write the hour's file of each asset, one shard of assets in memory at a time."""
        keys = [k for k, e in state.objects.items() if hour in e["hours"] and hour not in e["done"]]
        for shard in await self.shards(keys, hour):
            by_asset: dict[str, list[Row]] = defaultdict(list)
            async for row in self._rows_of_hour(keys, hour):
                if shard is None or row.asset_id in shard:
                    by_asset[row.asset_id].append(row)
            for asset, rows in sorted(by_asset.items()):
                await self._write_asset(hour, asset, rows, report)
        for key in keys:
            state.objects[key]["done"] = sorted({*state.objects[key]["done"], hour})
        report.hours_compacted.append(hour_label(hour))

    async def _rows_of_hour(self, keys: list[str], hour: int) -> AsyncIterator[Row]:
        """The valid rows of `hour` in the temp objects `keys`, one object read at a time."""
        for key in keys:
            rows, _ = self._valid(await self.records(key))
            for row in rows:
                if hour_start_ms(row.ts_ms) == hour:
                    yield row

    async def shards(self, keys: list[str], hour: int) -> list[set[str] | None]:
        """The hour's assets in shards of at most `archive_compaction_max_rows` rows each.

        `[None]` (every asset at once, one read of each object) when the objects' record
        counts, known from their names, already fit. Otherwise one counting pass finds
        each asset's rows, and consecutive assets (in id order) fill each shard; an asset
        alone over the bound gets a shard of its own, since its file is written at once.
        """
        bound = self.settings.archive_compaction_max_rows
        temp = (parse_temp_key(self.prefix, key) for key in keys)
        if sum(t.count for t in temp if t is not None) <= bound:
            return [None]
        counts: Counter[str] = Counter()
        async for row in self._rows_of_hour(keys, hour):
            counts[row.asset_id] += 1
        shards: list[set[str] | None] = []
        shard: set[str] = set()
        size = 0
        for asset in sorted(counts):
            if shard and size + counts[asset] > bound:
                shards.append(shard)
                shard, size = set(), 0
            shard.add(asset)
            size += counts[asset]
        shards.append(shard)
        return shards

    async def _write_asset(
        self, hour: int, asset: str, rows: list[Row], report: CompactionReport
    ) -> None:
        """The asset's file of the hour, merged with the one an earlier pass wrote."""
        name = compressed_key(self.prefix, self.topic, hour, asset)
        existing = await self.store.get(name)
        if existing is not None:
            rows = table_to_rows(pq.read_table(io.BytesIO(existing))) + rows
        table = await asyncio.to_thread(rows_to_table, rows, self.identity)
        body = await asyncio.to_thread(parquet_bytes, table)
        await self.store.put(name, body, "application/vnd.apache.parquet")
        report.rows_written += table.num_rows
        report.files_written += 1
        metrics.COMPACTED_ROWS.labels(self.topic).inc(table.num_rows)
        metrics.OBJECTS.labels("compressed").inc()
        metrics.BYTES.labels("compressed").inc(len(body))
        metrics.COMPRESSION_RATIO.labels("compressed").set(table.nbytes / max(1, len(body)))

    async def _retention(self, objects: dict[str, Any], state: TopicState, now_ms: float) -> int:
        newest: dict[int, str] = {}
        for key in objects:
            parsed = parse_temp_key(self.prefix, key)
            if parsed is not None and key > newest.get(parsed.partition, ""):
                newest[parsed.partition] = key
        cutoff = now_ms / 1000 - self.settings.temp_retention
        doomed = [
            key
            for key, info in objects.items()
            if state.fully_compacted(key)
            and key not in newest.values()
            and info.last_modified.timestamp() <= cutoff
        ]
        if doomed:
            await self.store.delete(doomed)
            metrics.TEMP_DELETED.inc(len(doomed))
        return len(doomed)


def now_ms() -> float:
    return datetime.now(tz=UTC).timestamp() * 1000


async def compact(
    settings: Settings, topics: Iterable[str], only_hour: int | None = None
) -> list[CompactionReport]:
    """One pass over each topic (the `archive compact` command and the worker timer)."""
    reports = []
    async with ArchiveStore(settings) as store:
        for topic in topics:
            reports.append(await Compactor(store, settings, topic).run(now_ms(), only_hour))
    return reports


def archived_topics(settings: Settings) -> tuple[str, ...]:
    """The topics the archive keeps: raw telemetry, and the battery agent's records."""
    return (
        settings.topic_telemetry,
        settings.topic_tesla,
        settings.topic_charge_sessions,
        settings.topic_battery_health,
    )


async def compact_owned_topics(app: faust.App, settings: Settings) -> None:
    """Compact the archived topics whose partition 0 this worker holds: one compactor each."""
    assigned = app.consumer.assignment()
    topics = [
        topic
        for topic in archived_topics(settings)
        if any(tp.topic == topic and tp.partition == 0 for tp in assigned)
    ]
    if topics:
        for report in await compact(settings, topics):
            if report.hours_compacted or report.temp_deleted:
                logger.info(
                    "event=compaction topic=%s hours=%d rows=%d files=%d invalid=%d "
                    "temp_deleted=%d",
                    report.topic,
                    len(report.hours_compacted),
                    report.rows_written,
                    report.files_written,
                    report.invalid_messages,
                    report.temp_deleted,
                )
