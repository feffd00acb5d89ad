"""Flush triggers, the worker cap and the per-asset share."""

from __future__ import annotations

import pytest

from streamapp.archive.buffer import BufferLimits, WorkerBuffers

LIMITS = BufferLimits(
    max_messages=3, max_bytes=100, flush_interval_s=10, worker_max_bytes=200, asset_max_bytes=60
)


def test_size_bytes_asset_share_and_interval_each_trigger_a_flush() -> None:
    buffers = WorkerBuffers(LIMITS)
    for offset in range(3):
        buffers.add("t", 0, offset, bytes([offset]), b"x" * 10, offset, now=0)
    assert [r for _, r in buffers.due(0)] == ["size"]

    buffers = WorkerBuffers(LIMITS)
    buffers.add("t", 0, 0, b"a", b"x" * 50, None, now=0)
    buffers.add("t", 0, 1, b"b", b"x" * 50, None, now=0)
    assert [r for _, r in buffers.due(0)] == ["bytes"]

    buffers = WorkerBuffers(LIMITS)
    buffers.add("t", 0, 0, b"chatty", b"x" * 60, None, now=0)
    assert [r for _, r in buffers.due(0)] == ["asset_share"]

    buffers = WorkerBuffers(LIMITS)
    buffers.add("t", 0, 0, b"a", b"x", None, now=0)
    assert buffers.due(9.9) == []
    assert [r for _, r in buffers.due(10)] == ["interval"]


def test_sealed_batches_stay_counted_until_written() -> None:
    buffers = WorkerBuffers(LIMITS)
    for offset in range(4):
        buffers.add("t", offset % 2, offset, b"a", b"x" * 50, offset, now=0)
    assert buffers.at_cap
    batch = buffers.partitions[("t", 0)].seal("bytes")
    assert (batch.first_offset, batch.last_offset, batch.messages) == (0, 2, [0, 2])
    assert buffers.at_cap
    buffers.released(batch)
    assert not buffers.at_cap and buffers.held_bytes == 100


def test_offsets_must_increase_and_discard_frees_memory() -> None:
    buffers = WorkerBuffers(LIMITS)
    buffers.add("t", 0, 5, b"a", b"x", None, now=0)
    with pytest.raises(ValueError):
        buffers.add("t", 0, 5, b"a", b"x", None, now=0)
    buffers.partitions[("t", 0)].seal("size")
    with pytest.raises(ValueError):
        buffers.add("t", 0, 4, b"a", b"x", None, now=0)
    buffers.add("t", 1, 0, b"a", b"xx", None, now=0)
    assert buffers.discard({("t", 1)}) == 1
    assert ("t", 1) not in buffers.partitions
