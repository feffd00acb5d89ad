"""The benches' wait loop: it returns when the count is reached and fails fast on a crash."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from streamapp.bench.harness import wait_until


def test_returns_when_the_count_reaches_the_target() -> None:
    counts = iter(range(1000))
    value = {"n": 0}

    def count() -> float:
        value["n"] = next(counts)
        return value["n"]

    first, done = asyncio.run(wait_until(count, 5, 10.0, "records"))
    assert first <= done
    assert value["n"] >= 5


def test_a_crashed_worker_fails_at_once_not_at_the_timeout() -> None:
    app = SimpleNamespace(crashed=True, crash_reason=ValueError("model file broken"))
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="crashed: ValueError"):
        asyncio.run(wait_until(lambda: 0, 1, 60.0, "throughput phase", app))
    assert time.monotonic() - started < 5


def test_a_count_that_never_arrives_times_out() -> None:
    with pytest.raises(TimeoutError, match="only 0 of 1"):
        asyncio.run(wait_until(lambda: 0, 1, 0.05, "records"))
