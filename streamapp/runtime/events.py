"""Faust's notion of "the current event", set explicitly for batched table access.

Faust routes a table read or write to the local RocksDB partition of the *current
event*. An agent that takes raw messages in bulk (no Faust `Event`) and reads or writes
one value per key must make each key's own message current first, or the value lands
in another partition's store and is lost on rebalance.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from faust.streams import _current_event
from faust.types import Message


class _Carrier:
    """What Faust's stores read from the current event: its `message`."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, message: Message) -> None:
        self.message = message


@contextmanager
def current_message(message: Message) -> Iterator[None]:
    """Within the block, table access goes to `message`'s partition."""
    carrier = _Carrier(message)
    token = _current_event.set(weakref.ref(carrier))  # type: ignore[arg-type]
    try:
        yield
    finally:
        _current_event.reset(token)
