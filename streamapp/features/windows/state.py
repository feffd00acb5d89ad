"""The per-asset window state the feature table keeps, and its binary codec."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

import numpy as np

from streamapp.features import accumulators as acc_ops


@dataclass(slots=True)
class Pane:
    """Accumulators of one pane; `origin` (ms) is the zero of its sample times."""

    key: int
    origin: float
    first_ts: float
    last_ts: float
    count: int
    acc: np.ndarray


@dataclass(slots=True)
class AssetState:
    """Everything the table keeps for one asset; serialised as one value.

    `asset_class` is the class the asset's windows follow while this state lives ("" in
    states written before classes existed: the default class).
    """

    offsets: dict[int, int] = field(default_factory=dict)
    watermark: float = -math.inf
    max_cycle: int = -1
    closed_cycle: int = -1
    names: list[str] = field(default_factory=list)
    panes: dict[int, Pane] = field(default_factory=dict)
    asset_class: str = ""

    _HEADER = struct.Struct("<2sdqqHHI")
    _OFFSET = struct.Struct("<iq")
    _PANE = struct.Struct("<qdddqH")
    _MAGIC = b"F2"
    _MAGIC_BEFORE_CLASSES = b"F1"

    def to_bytes(self) -> bytes:
        """Compact binary form: a header, the class, the signal names, then each pane's
        array."""
        asset_class = self.asset_class.encode()
        parts = [
            self._HEADER.pack(
                self._MAGIC,
                self.watermark,
                self.max_cycle,
                self.closed_cycle,
                len(self.offsets),
                len(self.names),
                len(self.panes),
            ),
            struct.pack("<H", len(asset_class)),
            asset_class,
        ]
        for source in sorted(self.offsets):
            parts.append(self._OFFSET.pack(source, self.offsets[source]))
        for name in self.names:
            encoded = name.encode()
            parts.append(struct.pack("<H", len(encoded)))
            parts.append(encoded)
        for key in sorted(self.panes):
            pane = self.panes[key]
            parts.append(
                self._PANE.pack(
                    pane.key, pane.origin, pane.first_ts, pane.last_ts, pane.count, len(pane.acc)
                )
            )
            parts.append(np.ascontiguousarray(pane.acc, dtype="<f8").tobytes())
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> AssetState:
        header = cls._HEADER.unpack_from(data, 0)
        magic, watermark, max_cycle, closed_cycle, n_offsets, n_names, n_panes = header
        pos = cls._HEADER.size
        asset_class = ""
        if magic == cls._MAGIC:
            (length,) = struct.unpack_from("<H", data, pos)
            asset_class = data[pos + 2 : pos + 2 + length].decode()
            pos += 2 + length
        elif magic != cls._MAGIC_BEFORE_CLASSES:
            raise ValueError("not a feature state value")
        offsets = {}
        for _ in range(n_offsets):
            source, offset = cls._OFFSET.unpack_from(data, pos)
            offsets[source] = offset
            pos += cls._OFFSET.size
        names = []
        for _ in range(n_names):
            (length,) = struct.unpack_from("<H", data, pos)
            pos += 2
            names.append(data[pos : pos + length].decode())
            pos += length
        panes = {}
        for _ in range(n_panes):
            key, origin, first_ts, last_ts, count, rows = cls._PANE.unpack_from(data, pos)
            pos += cls._PANE.size
            size = rows * acc_ops.WIDTH * 8
            acc = np.frombuffer(data, dtype="<f8", count=rows * acc_ops.WIDTH, offset=pos)
            pos += size
            panes[key] = Pane(
                key, origin, first_ts, last_ts, count, acc.reshape(rows, acc_ops.WIDTH).copy()
            )
        return cls(offsets, watermark, max_cycle, closed_cycle, names, panes, asset_class)

    @classmethod
    def header_of(cls, data: bytes) -> tuple[float, str]:
        """The watermark and class of a serialised state, without decoding the rest."""
        watermark = struct.unpack_from("<d", data, 2)[0]
        if data[:2] != cls._MAGIC:
            return watermark, ""
        pos = cls._HEADER.size
        (length,) = struct.unpack_from("<H", data, pos)
        return watermark, data[pos + 2 : pos + 2 + length].decode()

    def padded(self, pane: Pane) -> np.ndarray:
        """The pane's accumulators with a row for every signal the asset has seen."""
        missing = len(self.names) - len(pane.acc)
        if missing > 0:
            pane.acc = np.concatenate([pane.acc, acc_ops.empty(missing)])
        return pane.acc
