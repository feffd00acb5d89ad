"""The state cache: LRU eviction, and pinned states surviving it (no broker)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streamapp.state.cache import StateCache


def test_least_recently_used_state_is_dropped_first() -> None:
    cache: StateCache[int] = StateCache(2)
    for n, asset in enumerate("abc"):
        cache.put(asset, n)
    assert cache.get("a") is None and len(cache) == 2
    cache.get("b")
    cache.put("d", 3)
    assert cache.get("c") is None and cache.get("b") == 1


def test_pinned_states_outlive_eviction_until_unpinned() -> None:
    cache: StateCache[int] = StateCache(1)
    touched: dict[str, int] = {}
    token = cache.pin(touched.keys())
    for n, asset in enumerate("abc"):
        cache.put(asset, n)
        touched[asset] = n
    assert len(cache) == 3  # over its size: every state is pinned
    other = cache.pin({"x"})
    cache.put("x", 9)
    cache.put("y", 10)  # unpinned, but a put never drops the state it just stored
    assert len(cache) == 5
    cache.unpin(token)
    assert len(cache) == 1 and cache.get("x") == 9  # the one still pinned stays
    cache.unpin(other)
    cache.put("z", 11)
    assert cache.get("x") is None and cache.get("z") == 11


def test_clear_drops_pins_and_a_stale_unpin_is_harmless() -> None:
    cache: StateCache[int] = StateCache(1)
    old = cache.pin({"a"})
    cache.clear()
    new = cache.pin({"b"})
    cache.unpin(old)
    cache.put("b", 1)
    cache.put("c", 2)
    assert len(cache) == 2 and cache.is_pinned("b") and not cache.is_pinned("a")
    cache.unpin(new)
    assert len(cache) == 1 and cache.get("c") == 2


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(1, 4),
    batches=st.lists(st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=8), max_size=12),
)
def test_pipelined_batches_never_reread_an_unwritten_state(
    size: int, batches: list[list[str]]
) -> None:
    """Batch N+1 is prepared from the cache while batch N's write is in flight, as in
    `streamapp.runtime.batching.run_batches`; every application must survive in the table."""
    table: dict[str, int] = {}
    cache: StateCache[list[int]] = StateCache(size)
    in_flight: tuple[int, dict[str, int]] | None = None
    for batch in batches:
        touched: dict[str, int] = {}
        token = cache.pin(touched.keys())
        for asset in batch:
            state = cache.get(asset)
            if state is None:
                state = [table.get(asset, 0)]
                cache.put(asset, state)
            state[0] += 1
            touched[asset] = state[0]
        if in_flight is not None:  # the previous batch's write completes
            table.update(in_flight[1])
            cache.unpin(in_flight[0])
        in_flight = (token, touched)
    if in_flight is not None:
        table.update(in_flight[1])
    expected: dict[str, int] = {}
    for asset in (a for batch in batches for a in batch):
        expected[asset] = expected.get(asset, 0) + 1
    assert table == expected
