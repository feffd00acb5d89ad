"""What the metrics read from a running app's Faust and aiokafka objects at scrape time.

Neither library offers these figures publicly; reading them here keeps the private
attributes they come from inside `streamapp.runtime`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import faust
from faust.types import TP, CollectionT


def table_keys(table: CollectionT) -> int:
    """Keys in the table's active partitions; RocksDB's own estimate avoids a full scan."""
    store = cast(Any, table).data
    if getattr(store, "use_rocksdict", False) and hasattr(store, "_dbs_for_actives"):
        return sum(
            int(db.property_int_value("rocksdb.estimate-num-keys") or 0)
            for db in store._dbs_for_actives()
        )
    return len(store)


def input_positions(app: faust.App) -> Iterator[tuple[TP, int | None, int | None]]:
    """(partition, fetch highwater, committed-or-fetch position) per assigned input TP."""
    consumer = app.consumer
    thread = getattr(consumer, "_thread", None)
    client = getattr(thread, "_consumer", None)
    if client is None:
        return
    changelogs = set(app.tables.changelog_topics)
    assignment = client._subscription.subscription
    if assignment is None or assignment.assignment is None:
        return
    for tp in sorted(assignment.assignment.tps):
        if tp.topic in changelogs:
            continue
        state = assignment.assignment.state_value(tp)
        position = cast(Any, consumer)._committed_offset.get(tp)
        if position is None and state.has_valid_position:
            position = state.position
        yield tp, state.highwater, position
