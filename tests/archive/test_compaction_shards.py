"""Compaction under a row bound writes the same files as an unbounded pass (real moto S3).

The same temp objects go to two buckets; one is compacted with every row of an hour in
memory, the other with `ARCHIVE_COMPACTION_MAX_ROWS` far below an hour's rows, first
once, then again after a late object for a compacted hour arrives (merged into the
existing files). Both buckets must then hold byte-identical Parquet files and states.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from streamapp import s3
from streamapp.archive.compaction import Compactor, TopicState, now_ms, state_key
from streamapp.archive.records import (
    ArchivedRecord,
    compressed_topic_prefix,
    encode_line,
    encode_object,
    temp_key,
)
from streamapp.archive.store import ArchiveStore
from streamapp.dev.stack import DEV_REGION, DEV_S3_KEY, DEV_S3_SECRET
from streamapp.settings import Settings

pytestmark = pytest.mark.integration

TOPIC = "telemetry"
BOUND = 7
HOUR = datetime.now(tz=UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
# Uneven assets: one alone over the bound, ids that need escaping in a key.
WEIGHTS = {"A/1": 1, "B 2": 2, "C": 3, "D": 12, "E": 1, "F": 4, "G%": 2, "H": 5}


def settings_for(s3_server: str, max_rows: int) -> Settings:
    return Settings(
        s3_endpoint=s3_server,
        s3_bucket=f"shards-{uuid.uuid4().hex[:8]}",
        s3_key=DEV_S3_KEY,
        s3_secret=DEV_S3_SECRET,
        s3_region=DEV_REGION,
        compaction_grace=0,
        archive_compaction_max_rows=max_rows,
    )


def temp_objects(first_offset: int, rounds: int, hours: int) -> dict[str, bytes]:
    """Per partition one object per round: each asset's weight in records, over `hours`
    hours, with an invalid record in each object."""
    objects = {}
    for partition in range(2):
        offset = first_offset
        for round_ in range(rounds):
            lines = []
            for n, (asset, weight) in enumerate(WEIGHTS.items()):
                for i in range(weight):
                    ts = HOUR + timedelta(hours=(i + round_) % hours, seconds=n * 60 + i)
                    value = {
                        "asset_id": asset,
                        "ts": ts.isoformat().replace("+00:00", "Z"),
                        "signals": {"s2": float(offset), f"s{n}": 1.5},
                        "cycle": offset,
                    }
                    record = ArchivedRecord(
                        TOPIC, partition, offset, offset, asset.encode(), json.dumps(value).encode()
                    )
                    lines.append(encode_line(record))
                    offset += 1
            lines.append(encode_line(ArchivedRecord(TOPIC, partition, offset, 0, None, b"\xff")))
            key = temp_key("archive", TOPIC, partition, offset - len(lines) + 1, offset)
            objects[key] = encode_object(lines)
            offset += 1
    return objects


async def compact_with(settings: Settings, objects: dict[str, bytes]) -> dict[str, bytes]:
    """Put `objects`, run one pass; the compressed files and the state, by key."""
    async with ArchiveStore(settings) as store:
        for key, body in objects.items():
            await store.put(key, body, "application/gzip")
        await Compactor(store, settings, TOPIC).run(now_ms())
        keys = [i.key for i in await store.list(compressed_topic_prefix(store.prefix, TOPIC))]
        keys.append(state_key(store.prefix, TOPIC))
        return {key: body for key in keys if (body := await store.get(key)) is not None}


def test_a_row_bound_shards_the_hour_and_writes_the_same_files(s3_server: str) -> None:
    unbounded = settings_for(s3_server, 1_000_000)
    bounded = settings_for(s3_server, BOUND)
    for settings in (unbounded, bounded):
        asyncio.run(s3.ensure_bucket(settings))
    first = temp_objects(0, rounds=3, hours=2)
    late = temp_objects(1000, rounds=1, hours=1)  # the first hour again, once compacted
    results = []
    for settings in (unbounded, bounded):
        results.append(asyncio.run(compact_with(settings, first)))
        results.append(asyncio.run(compact_with(settings, late)))
    once, again, once_bounded, again_bounded = results
    assert once == once_bounded and again == again_bounded
    assert again != once  # the late rows were merged into existing files
    state = TopicState.loads(again[state_key("archive", TOPIC)])
    assert len(state.objects) == len(first) + len(late) and not state.pending_hours()
    assert len(again) - 1 == 2 * len(WEIGHTS)  # one file per asset and hour, plus the state

    async def shards() -> list[set[str] | None]:
        async with ArchiveStore(bounded) as store:
            return await Compactor(store, bounded, TOPIC).shards(
                sorted(first), int(HOUR.timestamp() * 1000)
            )

    found = asyncio.run(shards())
    assert None not in found and len(found) > 2
    assert sorted(a for shard in found if shard for a in shard) == sorted(WEIGHTS)
