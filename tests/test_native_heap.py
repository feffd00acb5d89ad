"""The native heap gives freed memory back when trimmed (glibc, as in the workers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamapp.native_heap import trim_native_heap

MiB = 1024 * 1024


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_trimming_returns_memory_freed_after_a_burst() -> None:
    burst = [bytes(2048) + bytes([i % 256]) for i in range(100_000)]  # ~200 MiB via malloc
    keep = burst[::1000]  # a few survivors scattered over the heap, as in a worker
    peak = rss_bytes()
    del burst
    before = rss_bytes()
    assert trim_native_heap()
    after = rss_bytes()
    assert keep
    assert after < before - 100 * MiB, (peak // MiB, before // MiB, after // MiB)
