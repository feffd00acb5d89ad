"""In-memory buffers of the archive: per partition, with a per-worker byte cap.

Pure bookkeeping (no I/O) so every flush rule is unit-tested: a partition buffer is
sealed into a `Batch` when it reaches `buffer_size` messages, `buffer_max_bytes`, its
age passes `buffer_flush_interval`, or one asset in it holds more than its share of
the worker cap (a chatty asset then drains through early flushes instead of filling
the memory every other asset needs). Sealed batches stay counted until their object
is written, so the worker cap bounds everything held, including while S3 is down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streamapp.settings import Settings


@dataclass(frozen=True, slots=True)
class BufferLimits:
    """The flush triggers and the memory cap, from the settings."""

    max_messages: int
    max_bytes: int
    flush_interval_s: float
    worker_max_bytes: int
    asset_max_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> BufferLimits:
        return cls(
            max_messages=settings.buffer_size,
            max_bytes=settings.buffer_max_bytes,
            flush_interval_s=settings.buffer_flush_interval,
            worker_max_bytes=settings.worker_buffer_max_bytes,
            asset_max_bytes=max(
                1, int(settings.worker_buffer_max_bytes * settings.buffer_asset_share)
            ),
        )


@dataclass(slots=True)
class Batch:
    """Consecutive messages of one partition, sealed for one temp object."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    lines: list[bytes]
    messages: list[Any]
    nbytes: int
    reason: str


@dataclass(slots=True)
class PartitionBuffer:
    """Messages of one partition not yet sealed, in offset order."""

    topic: str
    partition: int
    opened_at: float = 0.0
    lines: list[bytes] = field(default_factory=list)
    messages: list[Any] = field(default_factory=list)
    nbytes: int = 0
    first_offset: int = -1
    last_offset: int = -1
    asset_bytes: dict[bytes | None, int] = field(default_factory=dict)

    def add(self, offset: int, asset: bytes | None, line: bytes, message: Any, now: float) -> None:
        if offset <= self.last_offset:
            raise ValueError(f"offset {offset} after {self.last_offset}: buffers keep order")
        if not self.lines:
            self.opened_at = now
            self.first_offset = offset
        self.lines.append(line)
        self.messages.append(message)
        self.last_offset = offset
        size = len(line)
        self.nbytes += size
        self.asset_bytes[asset] = self.asset_bytes.get(asset, 0) + size

    def due(self, limits: BufferLimits, now: float) -> str | None:
        """Why this buffer must be flushed now, or None."""
        if not self.lines:
            return None
        if len(self.lines) >= limits.max_messages:
            return "size"
        if self.nbytes >= limits.max_bytes:
            return "bytes"
        if max(self.asset_bytes.values()) >= limits.asset_max_bytes:
            return "asset_share"
        if now - self.opened_at >= limits.flush_interval_s:
            return "interval"
        return None

    def seal(self, reason: str) -> Batch:
        batch = Batch(
            self.topic,
            self.partition,
            self.first_offset,
            self.last_offset,
            self.lines,
            self.messages,
            self.nbytes,
            reason,
        )
        self.lines, self.messages, self.nbytes, self.asset_bytes = [], [], 0, {}
        self.first_offset = -1
        return batch


class WorkerBuffers:
    """All partition buffers of one worker and the bytes they and sealed batches hold."""

    def __init__(self, limits: BufferLimits) -> None:
        self.limits = limits
        self.partitions: dict[tuple[str, int], PartitionBuffer] = {}
        self.held_bytes = 0

    def buffer(self, topic: str, partition: int) -> PartitionBuffer:
        key = (topic, partition)
        found = self.partitions.get(key)
        if found is None:
            found = self.partitions[key] = PartitionBuffer(topic, partition)
        return found

    def add(
        self,
        topic: str,
        partition: int,
        offset: int,
        asset: bytes | None,
        line: bytes,
        message: Any,
        now: float,
    ) -> PartitionBuffer:
        buffer = self.buffer(topic, partition)
        buffer.add(offset, asset, line, message, now)
        self.held_bytes += len(line)
        return buffer

    @property
    def at_cap(self) -> bool:
        """True when no more messages may be taken until a flush frees memory."""
        return self.held_bytes >= self.limits.worker_max_bytes

    def due(self, now: float) -> list[tuple[PartitionBuffer, str]]:
        found = []
        for buffer in self.partitions.values():
            reason = buffer.due(self.limits, now)
            if reason is not None:
                found.append((buffer, reason))
        return found

    def released(self, batch: Batch) -> None:
        """A sealed batch was written (or given up): its bytes are free again."""
        self.held_bytes -= batch.nbytes

    def discard(self, keys: set[tuple[str, int]] | None = None) -> int:
        """Drop unsealed messages (of `keys`, or all) after a rebalance; returns how many."""
        dropped = 0
        for key, buffer in list(self.partitions.items()):
            if keys is None or key in keys:
                dropped += len(buffer.lines)
                self.held_bytes -= buffer.nbytes
                del self.partitions[key]
        return dropped

    def stats(self) -> dict[tuple[str, int], tuple[int, int]]:
        """Buffered messages and bytes per partition, for the metrics."""
        return {key: (len(b.lines), b.nbytes) for key, b in self.partitions.items()}
