"""Batched access to a Faust table's RocksDB partitions, without Faust events.

A batched agent reads and writes one value per key of a batch of raw messages. Faust
routes table access to the partition of the *current event*, which a raw message is
not (`streamapp.runtime.events`); and `table[key] = value` queues each changelog record
in the producer buffer, which stalls every stream of the worker once 100 are pending.
Here each key goes to the partition of its own message, the changelog records of a
batch are sent as one record batch per partition (`streamapp.runtime.produce`), and
the changelog offsets are recorded as persisted only once the broker has them, as
Faust's own send callback does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP, Message
from faust.types.tables import TableT

from streamapp.runtime.events import current_message
from streamapp.runtime.metrics import TABLE_OPERATIONS
from streamapp.runtime.produce import send_all

Table = TableT[Any, Any]

OFFSET_KEY: bytes = RocksDBStore.offset_key
"""The key under which Faust keeps a partition's changelog offset in the table itself."""


def read(table: Table, key: bytes, message: Message) -> bytes | None:
    """`key`'s value in the partition of `message`, None if it has none (counted by
    Faust's table sensor, as any `table.get`)."""
    with current_message(message):
        return table.get(key)


def partition_items(table: Table, partition: int) -> Iterator[tuple[bytes, bytes]]:
    """Every key and value stored in one partition of this worker's table."""
    items: Iterator[tuple[bytes, bytes]] = (
        cast(Any, table.data)._db_for_partition(partition).items()
    )
    return items


async def write(table: Table, writes: dict[bytes, tuple[bytes, Message]]) -> None:
    """Store `key -> value` in the partition of each key's message; wait for the changelog."""
    store = table.data
    for key, (value, message) in writes.items():
        with current_message(message):
            store[key] = value
    TABLE_OPERATIONS.labels(table.name, "set").inc(len(writes))
    await _persist(
        table, [(key, value, message.partition) for key, (value, message) in writes.items()]
    )


async def delete(table: Table, deletions: dict[bytes, Message]) -> None:
    """Delete keys from the partition of each key's message; wait for the tombstones."""
    store = table.data
    for key, message in deletions.items():
        # Faust's own delete tries every open partition database (standbys too) when
        # its small key index misses; the key's partition is known here.
        cast(Any, store)._db_for_partition(message.partition).delete(key)
    TABLE_OPERATIONS.labels(table.name, "del").inc(len(deletions))
    await _persist(table, [(key, None, message.partition) for key, message in deletions.items()])


async def _persist(table: Table, records: list[tuple[bytes, bytes | None, int]]) -> None:
    store = cast(Any, table.data)  # Faust's store: records what its changelog holds
    changelog = table.changelog_topic.get_topic_name()
    for partition, offset in (await send_all(table.app, changelog, records)).items():
        store.set_persisted_offset(TP(changelog, partition), offset)
