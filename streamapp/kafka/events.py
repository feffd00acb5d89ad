"""Faust's notion of "the current event", set explicitly for batched table writes.

Faust routes a table write to the changelog partition (and local RocksDB
partition) of the *current event*. An agent that takes a batch of events and
writes one value per key afterwards must make each key's own event current first,
or the value lands in another partition's changelog and is lost on rebalance.
"""

from __future__ import annotations

import weakref

import faust
from faust.streams import _current_event


def make_current(event: faust.EventT) -> None:
    """Make `event` the current one for the table writes that follow."""
    _current_event.set(weakref.ref(event))
