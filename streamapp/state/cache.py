"""A bounded LRU of decoded asset states that can keep (pin) states not yet stored.

The agents keep decoded table values so that a busy asset is not decoded every batch;
the table (and its changelog) stays the truth, so any unpinned state may be dropped and
read again. A state changed by a batch whose table write is still in flight is not in
the table yet: dropping it would make the next read return the older stored value and
lose that batch's changes. Such states are pinned until the write completed.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Container
from typing import Generic, TypeVar

S = TypeVar("S")


class StateCache(Generic[S]):
    """At most `size` decoded asset states beyond the pinned ones, least recently used
    dropped first."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a state cache holds at least one state")
        self.size = size
        self._states: OrderedDict[str, S] = OrderedDict()
        self._pins: dict[int, Container[str]] = {}
        self._tokens = itertools.count()

    def __len__(self) -> int:
        return len(self._states)

    def get(self, asset_id: str) -> S | None:
        state = self._states.get(asset_id)
        if state is not None:
            self._states.move_to_end(asset_id)
        return state

    def put(self, asset_id: str, state: S) -> None:
        self._states[asset_id] = state
        self._states.move_to_end(asset_id)
        self._evict(asset_id)

    def pop(self, asset_id: str) -> None:
        self._states.pop(asset_id, None)

    def clear(self) -> None:
        """Drop every state and every pin (the pinned states' batches are abandoned)."""
        self._states.clear()
        self._pins.clear()

    def pin(self, assets: Container[str]) -> int:
        """Keep the states of `assets` until `unpin(token)`; returns the token.

        `assets` is consulted at each eviction, so a live view (a batch's growing dict
        of touched assets) pins each asset from the moment it is added.
        """
        token = next(self._tokens)
        self._pins[token] = assets
        return token

    def unpin(self, token: int) -> None:
        """Release a pin (a no-op after `clear`) and drop what then exceeds the size."""
        if self._pins.pop(token, None) is not None:
            self._evict()

    def is_pinned(self, asset_id: str) -> bool:
        return any(asset_id in assets for assets in self._pins.values())

    def _evict(self, keep: str | None = None) -> None:
        """Drop the least recently used unpinned states beyond `size`, never `keep` (the
        state just put: its caller is about to use it, and maybe to pin it).

        A pinned state at the front is moved to the back (it belongs to a current batch,
        so it counts as recently used): each state is looked at once per call at most,
        and when only pinned states remain the cache stays over its size until unpinned.
        """
        passed = 0
        while len(self._states) > self.size and passed < len(self._states):
            oldest = next(iter(self._states))
            if oldest == keep or self.is_pinned(oldest):
                self._states.move_to_end(oldest)
                passed += 1
            else:
                del self._states[oldest]
