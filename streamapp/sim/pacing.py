"""Sending simulated messages at a steady rate."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator

from aiokafka import AIOKafkaProducer

from streamapp.runtime.config import aiokafka_kwargs
from streamapp.settings import Settings

TICK_S = 0.05


async def send_paced(
    settings: Settings,
    topic: str,
    pairs: Iterator[tuple[bytes, bytes]],
    rate: float,
    duration_s: float | None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Send pairs at `rate` msgs/s (0: as fast as possible) until `duration_s` or the end."""
    producer = AIOKafkaProducer(linger_ms=5, **aiokafka_kwargs(settings))
    await producer.start()
    sent = 0
    started = time.monotonic()
    try:
        while duration_s is None or time.monotonic() - started < duration_s:
            due = int((time.monotonic() - started + TICK_S) * rate) - sent if rate > 0 else 5000
            chunk = list(itertools.islice(pairs, max(due, 0)))
            futures = [await producer.send(topic, value, key=key) for key, value in chunk]
            for future in futures:
                await future
            sent += len(futures)
            if progress is not None:
                progress(sent)
            if due > 0 and not chunk:
                break
            if rate > 0:
                await asyncio.sleep(TICK_S)
    finally:
        await producer.stop()
    return sent
