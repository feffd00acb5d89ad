"""Per-partition bookkeeping of the feature table, beside the asset states.

* `PartitionClock`: the partition's clock (largest event time seen there) and, per
  offset source, the highest offset whose effects are all in the changelog. Stored in
  the table itself under a key no asset id can take (written after the batch's asset
  states, before any deletion), so recovery restores it with them. Its offsets guard
  records of assets whose state was deleted: the asset's own offsets went with it.
* `ExpiryIndex`: this worker's assets of one partition by the clock at which they
  expire, so the silent ones are found without scanning the table every batch; rebuilt
  from the table after a rebalance or a failed batch.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from streamapp.features.windows import AssetState
from streamapp.runtime.tables import OFFSET_KEY

_CLOCK_PREFIX = b"\x00streamapp.features.clock."
_HEADER = struct.Struct("<2sdH")
_OFFSET = struct.Struct("<iq")
_MAGIC = b"C1"


def clock_key(partition: int) -> bytes:
    return _CLOCK_PREFIX + str(partition).encode()


def is_asset_key(key: bytes) -> bool:
    """False for the clock keys and Faust's own offset key, which share the table."""
    return not key.startswith(_CLOCK_PREFIX) and key != OFFSET_KEY


@dataclass(slots=True)
class PartitionClock:
    stream_ms: float = -math.inf
    offsets: dict[int, int] = field(default_factory=dict)

    def copy(self) -> PartitionClock:
        return PartitionClock(self.stream_ms, dict(self.offsets))

    def advance(self, ts_ms: float, source: int, offset: int) -> None:
        """Count one record of the partition (applied, late or replayed alike)."""
        if ts_ms > self.stream_ms:
            self.stream_ms = ts_ms
        if offset > self.offsets.get(source, -1):
            self.offsets[source] = offset

    def to_bytes(self) -> bytes:
        parts = [_HEADER.pack(_MAGIC, self.stream_ms, len(self.offsets))]
        parts += [_OFFSET.pack(source, self.offsets[source]) for source in sorted(self.offsets)]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> PartitionClock:
        magic, stream_ms, count = _HEADER.unpack_from(data, 0)
        if magic != _MAGIC:
            raise ValueError("not a feature partition clock")
        offsets = dict(
            _OFFSET.iter_unpack(data[_HEADER.size : _HEADER.size + count * _OFFSET.size])
        )
        return cls(stream_ms, offsets)


class Expiry(Protocol):
    """When an asset expires (`FeatureExtractor`: by the windows of its class)."""

    bucket_ms: int

    def expires_at(self, watermark: float, asset_class: str) -> float: ...


class ExpiryIndex:
    """Asset ids by expiry clock, bucketed by window size so a due check reads few buckets."""

    def __init__(self, expiry: Expiry) -> None:
        self._expiry_of = expiry.expires_at
        self._bucket_ms = expiry.bucket_ms
        self._expiry: dict[str, float] = {}
        self._buckets: dict[float, set[str]] = {}  # -inf: already due

    @classmethod
    def scan(cls, expiry: Expiry, items: Iterable[tuple[bytes, bytes]]) -> ExpiryIndex:
        """The index of a partition's stored states (reads only each value's header)."""
        index = cls(expiry)
        for key, value in items:
            if is_asset_key(key):
                index.set(key.decode(), *AssetState.header_of(value))
        return index

    def __len__(self) -> int:
        return len(self._expiry)

    def set(self, asset_id: str, watermark: float, asset_class: str) -> None:
        self.remove(asset_id)
        expires = self._expiry_of(watermark, asset_class)
        if math.isnan(expires) or expires == math.inf:
            return
        bucket = -math.inf if expires == -math.inf else math.floor(expires / self._bucket_ms)
        self._expiry[asset_id] = expires
        self._buckets.setdefault(bucket, set()).add(asset_id)

    def remove(self, asset_id: str) -> None:
        expires = self._expiry.pop(asset_id, None)
        if expires is None:
            return
        bucket = -math.inf if expires == -math.inf else math.floor(expires / self._bucket_ms)
        members = self._buckets[bucket]
        members.discard(asset_id)
        if not members:
            del self._buckets[bucket]

    def due(self, stream_ms: float, limit: int) -> list[str]:
        """Up to `limit` assets that expire at or before the clock `stream_ms`, oldest first."""
        found: list[str] = []
        last = math.floor(stream_ms / self._bucket_ms) if math.isfinite(stream_ms) else stream_ms
        for bucket in sorted(b for b in self._buckets if b <= last):
            for asset_id in sorted(self._buckets[bucket], key=self._expiry.__getitem__):
                if len(found) >= limit:
                    return found
                if self._expiry[asset_id] <= stream_ms:
                    found.append(asset_id)
        return found
