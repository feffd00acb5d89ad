"""The RocksDB store of every table of a worker, inside one memory budget.

Faust opens one RocksDB database per table partition (actives and standbys) and gives
each its own 2 GiB block cache and 3 x 64 MiB write buffers: a worker with two tables,
8 partitions and a standby of each holds 32 databases, and its memory grows with the
state far past 1 GiB. Here all databases of a process share one LRU block cache, to
which their memtables (through one write-buffer manager), index and filter blocks are
charged, so RocksDB's memory stays near `rocksdb_memory_bytes` whatever the number of
tables, partitions and keys. The store is Faust's own; only the options it opens
databases with change. Apps select it with `store=store_url(settings)`.

The rest of a worker's native heap is bounded in `streamapp.native_heap`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rocksdict
from faust.stores import STORES
from faust.stores.rocksdb import RocksDBOptions
from faust.stores.rocksdb import Store as RocksDBStore
from yarl import URL

from streamapp.settings import Settings

SCHEME = "streamapp-rocksdb"
MEMTABLES_PER_DB = 2
# How many databases may fill a memtable at once before the shared budget forces
# flushes: each memtable is this fraction of the write-buffer budget.
MEMTABLE_SHARE = 4
# Compact an SST file holding DELETION_TRIGGER tombstones among DELETION_WINDOW
# consecutive entries, or tombstones for DELETION_RATIO of its entries.
DELETION_WINDOW = 1000
DELETION_TRIGGER = 250
DELETION_RATIO = 0.3


@dataclass(frozen=True, slots=True)
class MemoryBudget:
    """The cache and write-buffer manager shared by every database of the process."""

    memory_bytes: int
    write_buffer_bytes: int
    cache: rocksdict.Cache
    write_buffers: rocksdict.WriteBufferManager

    @property
    def memtable_bytes(self) -> int:
        return max(1 << 20, self.write_buffer_bytes // MEMTABLE_SHARE)


_budgets: dict[tuple[int, int], MemoryBudget] = {}


def budget(memory_bytes: int, write_buffer_bytes: int) -> MemoryBudget:
    """The process's budget of that size (created once: databases must share it)."""
    key = (memory_bytes, write_buffer_bytes)
    found = _budgets.get(key)
    if found is None:
        cache = rocksdict.Cache(memory_bytes)
        manager = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            write_buffer_bytes, False, cache
        )
        found = _budgets[key] = MemoryBudget(memory_bytes, write_buffer_bytes, cache, manager)
    return found


def store_url(settings: Settings) -> str:
    """The `store=` URL of a Faust app whose tables share the settings' memory budget."""
    return (
        f"{SCHEME}://?memory={settings.rocksdb_memory_bytes}"
        f"&write_buffers={settings.rocksdb_write_buffer_bytes}"
    )


class BoundedRocksDBOptions(RocksDBOptions):
    """Faust's options, with the block cache and write buffers taken from the budget."""

    def __init__(self, shared: MemoryBudget, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.budget = shared
        self.write_buffer_size = shared.memtable_bytes
        self.max_write_buffer_number = MEMTABLES_PER_DB

    def open(self, path: Path, *, read_only: bool = False) -> rocksdict.Rdict:
        db = rocksdict.Rdict(
            str(path), options=self.as_options(), access_type=rocksdict.AccessType.read_write()
        )
        db.set_read_options(rocksdict.ReadOptions())
        return db

    def as_options(self) -> rocksdict.Options:
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        if self.max_open_files is not None:
            options.set_max_open_files(self.max_open_files)
        options.set_write_buffer_size(self.write_buffer_size)
        options.set_max_write_buffer_number(self.max_write_buffer_number)
        options.set_target_file_size_base(self.target_file_size_base)
        options.set_write_buffer_manager(self.budget.write_buffers)
        # Expired feature states are deleted in bulk: an SST file that is mostly
        # tombstones is compacted soon, so the directory gives the space back.
        options.add_compact_on_deletion_collector_factory(
            DELETION_WINDOW, DELETION_TRIGGER, DELETION_RATIO
        )
        # Info logs are rolled per open; keep a couple so a restarted worker's directory
        # does not grow by one LOG.old file per partition and start.
        options.set_keep_log_file_num(2)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, True)
        table.set_block_cache(self.budget.cache)
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        return options


class BoundedStore(RocksDBStore):
    """Faust's RocksDB store whose databases open inside the process's memory budget."""

    def __init__(self, url: str | URL, *args: Any, **kwargs: Any) -> None:
        query = URL(url).query
        shared = budget(int(query["memory"]), int(query["write_buffers"]))
        super().__init__(url, *args, **kwargs)
        self.rocksdb_options = BoundedRocksDBOptions(
            shared, **(self.options or {}), use_rocksdict=True
        )


STORES.aliases.setdefault(SCHEME, f"{__name__}:BoundedStore")
