"""Table state that is ahead of its changelog: rebuild it, or exit with one clear line.

A worker's RocksDB state records the changelog offset it holds. If the broker lost or
truncated the changelog (an embedded broker restarted without its log, a topic
deleted and recreated, a cluster restored from an older backup), the local state
names offsets the changelog no longer has, and Faust's recovery raises
`ConsistencyError` on every start: a crash loop. Here such a partition's local state
is discarded and rebuilt from what the changelog has (with a warning) when that is
allowed: always on the embedded stack, whose broker state is disposable, and on an
external broker only with REBUILD_STALE_STATE=true. Otherwise the worker exits with
one line naming the partition and how to rebuild it, before it processes anything.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections import Counter
from typing import Any, cast

from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP

from streamapp.settings import Settings

logger = logging.getLogger(__name__)

EXIT_STALE_STATE = 78  # EX_CONFIG: restarting alone cannot fix it


def stale_partitions(
    local_offsets: Counter[TP], highwaters: dict[TP, int]
) -> dict[TP, tuple[int, int]]:
    """`{tp: (local offset, last changelog offset)}` where the local state is ahead.

    Offsets as Faust keeps them: the last offset applied, and high watermark - 1
    (so an empty changelog is -1). A partition with no local offset is never stale.
    """
    stale = {}
    for tp, local in local_offsets.items():
        if local is None or local < 0 or tp not in highwaters:
            continue
        last = highwaters[tp] - 1
        if local > last:
            stale[tp] = (local, last)
    return stale


def discard_partition(table: Any, partition: int) -> None:
    """Close and delete one partition's RocksDB database of `table` (reopened empty)."""
    store = table.data
    store._dbs.pop(partition, None)
    store._key_index.clear()  # a cache of key -> partition; other partitions refill it
    shutil.rmtree(store.partition_path(partition), ignore_errors=True)


def rebuild_allowed(settings: Settings) -> bool:
    """Whether stale local state may be discarded (module docstring)."""
    return settings.embedded_stack or settings.rebuild_stale_state


class RebuildingRecovery(Recovery):
    """Faust's recovery, checking persisted offsets against the changelogs first."""

    settings: Settings

    async def _build_offsets(
        self, consumer: Any, tps: set[TP], destination: Counter[TP], title: str
    ) -> None:
        stale = stale_partitions(
            Counter({tp: destination.get(tp) for tp in tps}),
            dict(await consumer.highwaters(*tps)) if tps else {},
        )
        if stale:
            self._handle_stale(stale, destination)
        await super()._build_offsets(consumer, tps, destination, title)

    def _handle_stale(self, stale: dict[TP, tuple[int, int]], destination: Counter[TP]) -> None:
        settings = self.settings
        if not rebuild_allowed(settings):
            tp, (local, last) = min(stale.items())
            path = cast(Any, self.tp_to_table[tp]).data.partition_path(tp.partition)
            line = (
                f"table state in {path} is ahead of changelog {tp.topic} partition "
                f"{tp.partition} (local offset {local} > last offset {last}): the broker "
                f"lost or truncated it; rebuild it from the changelog with "
                f"`REBUILD_STALE_STATE=true streamapp worker` (or delete {path})"
            )
            logger.critical("event=stale_table_state %s", line)
            for handler in logging.getLogger().handlers:
                handler.flush()
            print(f"streamapp worker: {line}", file=sys.stderr, flush=True)
            os._exit(EXIT_STALE_STATE)  # before anything is processed; nothing to flush
        for tp, (local, last) in sorted(stale.items()):
            table = self.tp_to_table[tp]
            logger.warning(
                "event=stale_table_state_rebuilt topic=%s partition=%d local_offset=%d "
                "changelog_last_offset=%d",
                tp.topic,
                tp.partition,
                local,
                last,
            )
            discard_partition(table, tp.partition)
            destination[tp] = None  # type: ignore[assignment]  # Faust reads None as "no offset yet"


class RebuildingTableManager(TableManager):
    """Faust's table manager with `RebuildingRecovery`."""

    settings: Settings

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            recovery = RebuildingRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
            recovery.settings = self.settings
            self._recovery = recovery
        return self._recovery


def table_manager(settings: Settings) -> type[RebuildingTableManager]:
    """The `TableManager=` class of an app with these settings."""
    return type("StreamappTableManager", (RebuildingTableManager,), {"settings": settings})
