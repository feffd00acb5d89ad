"""Per-asset feature sequences for streaming RUL: pure logic, tested without a broker.

An asset's state is one table value holding its last W feature rows (as lists, in the
order of `names`, the features the serving model reads), the source offset of the last
event applied (replays at or below it are skipped, so a crash never double-applies a
step), the end of the last window applied (a window re-emitted by the feature agent
after its own crash carries a new offset but the same end, and is skipped too), and the
predictions its last batch emitted, as the exact bytes sent.

The agent writes the state, emissions included, before it sends those predictions, and
handles its next batch only after the broker acknowledged them. So after a crash, a
replayed step is either older than the last batch (its prediction is on the topic) or
one of the stored emissions, which is sent again byte for byte: predictions are at least
once, and every copy is identical, `metadata.latency_ms` included.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

import numpy as np
import orjson

from streamapp.contracts.features import FeatureRecord

_HEADER_SIZE = struct.Struct("<I")


#: Sensor ids that mean the whole asset (the feature agent emits `all`).
WHOLE_ASSET = (None, "", "all")


def sequence_key(record: FeatureRecord) -> str:
    """The table key of a record's sequence: the asset id, or asset id + the sensor id
    (after a unit separator) for a record of one of the asset's sensors, so that every
    sensor's windows make their own history instead of colliding on the same window end."""
    if record.sensor_id in WHOLE_ASSET:
        return record.asset_id
    return f"{record.asset_id}\x1f{record.sensor_id}"


def missing_features(record: FeatureRecord, needed: list[str]) -> list[str]:
    return [name for name in needed if name not in record.features]


def _no_rows(columns: int = 0) -> np.ndarray:
    return np.empty((0, columns), dtype=np.float64)


@dataclass(slots=True, eq=False)
class AssetSequence:
    """The table value of one asset; `rows` is a (steps, len(names)) float64 array.

    An array, not lists: the agent reads each asset's rows as a model window and writes
    them as bytes once per event, and list-to-array conversions were the largest cost
    of its Python side.
    """

    names: list[str] = field(default_factory=list)
    rows: np.ndarray = field(default_factory=_no_rows)
    last_offset: int = -1
    last_window_end_ms: float = -math.inf
    emitted: list[tuple[int, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        rows = np.asarray(self.rows, dtype=np.float64)
        self.rows = rows.reshape(len(rows), len(self.names))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, AssetSequence)
            and self.names == other.names
            and np.array_equal(self.rows, other.rows)
            and self.last_offset == other.last_offset
            and self.last_window_end_ms == other.last_window_end_ms
            and self.emitted == other.emitted
        )

    def to_bytes(self) -> bytes:
        """The table value: a JSON header (names, guards, emission sizes), the rows as
        float64, then the emitted predictions' bytes.

        Binary rows keep every value bit-exact and cost a fraction of JSON to write once
        per touched asset and batch (the changelog carries rows, guards and emissions
        together).
        """
        header = orjson.dumps(
            {
                "names": self.names,
                "rows": len(self.rows),
                "last_offset": self.last_offset,
                "last_window_end_ms": None
                if math.isinf(self.last_window_end_ms)
                else self.last_window_end_ms,
                "emitted": [[offset, len(value)] for offset, value in self.emitted],
            }
        )
        rows = self.rows.astype("<f8", copy=False).tobytes()
        emitted = b"".join(value for _, value in self.emitted)
        return _HEADER_SIZE.pack(len(header)) + header + rows + emitted

    @classmethod
    def from_bytes(cls, value: bytes | None) -> AssetSequence:
        if not value:
            return cls()
        (size,) = _HEADER_SIZE.unpack_from(value)
        start = _HEADER_SIZE.size
        header = orjson.loads(value[start : start + size])
        names = list(header["names"])
        count = int(header["rows"])
        start += size
        rows = np.frombuffer(value, dtype="<f8", count=count * len(names), offset=start)
        start += rows.nbytes
        emitted = []
        for offset, length in header.get("emitted", []):
            emitted.append((int(offset), bytes(value[start : start + length])))
            start += length
        end = header["last_window_end_ms"]
        return cls(
            names=names,
            rows=rows.reshape(count, len(names)),
            last_offset=int(header["last_offset"]),
            last_window_end_ms=-math.inf if end is None else float(end),
            emitted=emitted,
        )

    def snapshot(self) -> AssetSequence:
        """This state as it is now, with no emissions yet: later `apply` calls replace
        `rows` (never change it in place), so the snapshot shares it safely."""
        return AssetSequence(self.names, self.rows, self.last_offset, self.last_window_end_ms)

    def emission(self, offset: int) -> bytes | None:
        """The prediction sent for the event at `offset`, if it was in the last batch."""
        for emitted_offset, value in self.emitted:
            if emitted_offset == offset:
                return value
        return None

    def project(self, names: list[str]) -> None:
        """Re-key the rows to `names` (a new model): kept if they hold every name, else dropped."""
        if names == self.names:
            return
        if set(names) <= set(self.names):
            index = [self.names.index(name) for name in names]
            self.rows = self.rows[:, index]
        else:
            self.rows = _no_rows(len(names))
        self.names = list(names)


class Outcome:
    """What to do with one event, decided by `AssetSequence.apply`."""

    APPLIED = "applied"
    REPLAYED = "replayed"
    DUPLICATE_WINDOW = "duplicate_window"


def apply(
    state: AssetSequence,
    record: FeatureRecord,
    offset: int,
    keep_features: list[str] | None,
    capacity: int,
) -> str:
    """Append the record's features unless it was applied before; returns an `Outcome`.

    `keep_features` are the serving model's inputs. With no model (none active, or the
    active one refused at start) every feature is kept, except that an asset whose record
    holds all of its columns keeps those: its history stays for when a model serves again.
    """
    if offset <= state.last_offset:
        return Outcome.REPLAYED
    state.last_offset = offset
    if record.window_end_ms <= state.last_window_end_ms:
        return Outcome.DUPLICATE_WINDOW
    state.last_window_end_ms = record.window_end_ms
    if keep_features is None:
        held = bool(state.names) and all(name in record.features for name in state.names)
        keep_features = state.names if held else sorted(record.features)
    state.project(keep_features)
    features = record.features
    row = np.array([[features[name] for name in state.names]], dtype=np.float64)
    keep = state.rows[max(0, len(state.rows) - capacity + 1) :]
    state.rows = np.concatenate([keep, row]) if len(keep) else row
    return Outcome.APPLIED
