"""`take`: what a batched agent gets from its route's queue of message lists."""

from __future__ import annotations

import asyncio
import time

from streamapp.runtime.batching import take


def test_take_gathers_queued_lists_until_it_has_enough() -> None:
    async def scenario() -> tuple[list[int], list[int]]:
        queue: asyncio.Queue[list[int]] = asyncio.Queue()
        for chunk in ([1, 2], [3], [4, 5, 6], [7]):
            queue.put_nowait(chunk)
        first = await take(queue, 4, 5.0)  # type: ignore[arg-type]
        second = await take(queue, 4, 0.0)  # type: ignore[arg-type]
        return first, second

    first, second = asyncio.run(scenario())
    assert first == [1, 2, 3, 4, 5, 6]
    assert second == [7]


def test_take_waits_at_most_within_after_the_first_list() -> None:
    async def scenario() -> tuple[list[int], float]:
        queue: asyncio.Queue[list[int]] = asyncio.Queue()
        queue.put_nowait([1])
        started = time.monotonic()
        found = await take(queue, 100, 0.05)  # type: ignore[arg-type]
        return found, time.monotonic() - started

    found, waited = asyncio.run(scenario())
    assert found == [1]
    assert 0.04 <= waited < 1.0
