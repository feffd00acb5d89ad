"""`archive verify`: Kafka against both S3 layers, offset by offset.

Kafka's side is, per partition, every offset from the first one to the high watermark
of a Fetch (the archived topics are neither compacted nor transactional, so offsets
are dense). The temp layer is read line by line; the compressed layer's (partition,
offset) columns are read from every Parquet file. A valid record counts as missing
from the compressed layer only when the compaction state marks its hour compacted;
before that it is `pending_compaction`.
"""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from typing import Any

import pyarrow.parquet as pq

from streamapp.archive.compaction import Compactor, TopicState, state_key
from streamapp.archive.records import (
    compressed_topic_prefix,
    hour_start_ms,
    parse_temp_key,
    temp_topic_prefix,
)
from streamapp.archive.store import ArchiveStore
from streamapp.contracts.codec import Invalid
from streamapp.runtime.offsets import partition_bounds
from streamapp.settings import Settings

SHOWN = 10


def _summary(identities: set[tuple[int, int]] | list[tuple[int, int]]) -> dict[str, Any]:
    ordered = sorted(identities)
    return {"count": len(ordered), "first": [list(i) for i in ordered[:SHOWN]]}


async def verify(settings: Settings, topic: str) -> dict[str, Any]:
    bounds = await partition_bounds(settings, topic)
    kafka = {(p, o) for p, (first, end) in bounds.items() for o in range(first, end)}
    async with ArchiveStore(settings) as store:
        compactor = Compactor(store, settings, topic)
        temp_seen: Counter[tuple[int, int]] = Counter()
        valid_hours: dict[tuple[int, int], tuple[str, int]] = {}
        invalid = 0
        for info in await store.list(temp_topic_prefix(store.prefix, topic)):
            if parse_temp_key(store.prefix, info.key) is None:
                continue
            for record in await compactor.records(info.key):
                identity = (record.partition, record.offset)
                temp_seen[identity] += 1
                result = compactor.decode(record)
                if isinstance(result, Invalid):
                    invalid += temp_seen[identity] == 1
                else:
                    valid_hours[identity] = (info.key, hour_start_ms(result.ts_ms))
        compressed_seen: Counter[tuple[int, int]] = Counter()
        for info in await store.list(compressed_topic_prefix(store.prefix, topic)):
            if not info.key.endswith(".parquet"):
                continue
            body = await store.get(info.key)
            if body is None:
                continue
            table = await asyncio.to_thread(
                pq.read_table, io.BytesIO(body), columns=["partition", "offset"]
            )
            data = table.to_pydict()
            compressed_seen.update(zip(data["partition"], data["offset"], strict=True))
        state = TopicState.loads(await store.get(state_key(store.prefix, topic)))
    compacted = {
        identity
        for identity, (key, hour) in valid_hours.items()
        if hour in state.objects.get(key, {}).get("done", ())
    }
    temp = set(temp_seen)
    return {
        "topic": topic,
        "partitions": {str(p): {"first": f, "end": e} for p, (f, e) in bounds.items()},
        "kafka_messages": len(kafka),
        "temp_messages": sum(temp_seen.values()),
        "temp_distinct_offsets": len(temp),
        "compressed_rows": sum(compressed_seen.values()),
        "valid_messages": len(valid_hours),
        "invalid_messages": invalid,
        "pending_compaction": len(set(valid_hours) - compacted - set(compressed_seen)),
        "missing": {
            "temp": _summary(kafka - temp),
            "compressed": _summary(compacted - set(compressed_seen)),
        },
        "duplicates": {
            "temp": _summary([i for i, n in temp_seen.items() if n > 1]),
            "compressed": _summary([i for i, n in compressed_seen.items() if n > 1]),
        },
    }


def is_clean(report: dict[str, Any]) -> bool:
    """Nothing missing and nothing duplicated in either layer."""
    return not any(
        report[kind][layer]["count"]
        for kind in ("missing", "duplicates")
        for layer in ("temp", "compressed")
    )
