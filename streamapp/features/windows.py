"""Window assignment, per-asset window state, closing and emission. Pure: no Kafka here.

Windows are per asset and driven by that asset's own event time: its watermark is the
largest `ts` it has applied. Replaying an asset's records in offset order therefore
reproduces the same state, the same late records and the same emissions, whatever
the batching, the worker or the wall clock (a per-partition watermark would close an
asset's windows at a point that depends on how other assets' records interleave).

Only silence is judged on the partition's clock, so that the table forgets assets
that stopped reporting: `stream_ms`, the largest `ts` of the records of the asset's
partition up to and including the record at hand. An asset *expires* once that clock
reaches its watermark + the idle timeout: its open windows are emitted as they are
and its state is deleted. Nothing of it is kept, so lateness must not need it: a record
is also late when its earliest window starts at or before the *horizon*, the clock
minus the idle timeout (for cycle windows: when its `ts` is at or before it). Every
window an expired asset emitted starts at or before its watermark, which is at or
before the horizon from then on, so no later record can reopen one. Both rules are
decided per record on the clock as it stood at that record, and an asset expiring at
the end of a batch has no later record in it, so the emissions and late records do not
depend on the batching either.

Each record updates exactly one *pane*: the window itself for tumbling windows, a
slice of gcd(size, step) for hopping windows (a hopping window merges its panes when
it closes, so a record costs one update however many windows overlap it), or its
cycle for cycle windows. A time window [start, end) closes when the watermark reaches
end + grace; a record whose earliest window has closed is late and is applied to no
window. A cycle window closes when a later cycle has been seen and the watermark
reaches the cycle's last timestamp + grace; a record of a closed cycle is late.
"""

from __future__ import annotations

import bisect
import math
import struct
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from streamapp.contracts.features import encode_features
from streamapp.contracts.telemetry import Telemetry
from streamapp.features import accumulators as acc_ops

WindowKind = Literal["tumbling", "hopping", "cycle"]
LATE = "late"
DIRECT = -1
NO_CYCLE = "late: no cycle field, required by cycle windows"
EMIT_CHUNK = 1024


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """Window shape in integer milliseconds (epoch aligned)."""

    kind: WindowKind
    size_ms: int
    step_ms: int
    grace_ms: float
    idle_ms: float = math.inf

    @classmethod
    def build(
        cls,
        kind: WindowKind,
        size_s: float,
        step_s: float | None,
        grace_s: float,
        idle_s: float | None = None,
    ) -> WindowSpec:
        """`idle_s`: the idle timeout after which an asset expires (None: never)."""
        size_ms = round(size_s * 1000)
        step_ms = size_ms if kind != "hopping" or step_s is None else round(step_s * 1000)
        if size_ms <= 0 or step_ms <= 0:
            raise ValueError("window size and step must be at least 1 ms")
        if kind == "hopping" and step_ms > size_ms:
            raise ValueError("hopping windows need step <= size")
        grace_ms = grace_s * 1000.0
        idle_ms = math.inf if idle_s is None else idle_s * 1000.0
        # Shorter, and an asset reporting on time would have its newest window closed
        # by silence before its own clock could close it.
        least = grace_ms if kind == "cycle" else size_ms + grace_ms
        if idle_ms < least:
            what = "grace" if kind == "cycle" else "size + grace"
            raise ValueError(f"the idle timeout must be at least {what} ({least / 1000:g} s)")
        return cls(kind, size_ms, step_ms, grace_ms, idle_ms)

    @property
    def pane_ms(self) -> int:
        return math.gcd(self.size_ms, self.step_ms)

    def pane_of(self, ts_ms: float) -> int:
        """Start of the pane holding `ts_ms`."""
        pane = self.pane_ms
        return math.floor(ts_ms / pane) * pane

    def window_starts(self, ts_ms: float) -> list[int]:
        """Starts of every window containing `ts_ms`, oldest first."""
        last = math.floor(ts_ms / self.step_ms) * self.step_ms
        first = math.floor((ts_ms - self.size_ms) / self.step_ms) * self.step_ms + self.step_ms
        return list(range(first, last + 1, self.step_ms))

    def windows_of_pane(self, pane: int) -> range:
        """Starts of every window made of (among others) the pane starting at `pane`."""
        first = math.ceil((pane + self.pane_ms - self.size_ms) / self.step_ms) * self.step_ms
        last = math.floor(pane / self.step_ms) * self.step_ms
        return range(first, last + 1, self.step_ms)

    def is_late(self, ts_ms: float, watermark: float) -> bool:
        """True when the earliest window containing `ts_ms` has already closed."""
        return self._first_start(ts_ms) + self.size_ms + self.grace_ms <= watermark

    def _first_start(self, ts_ms: float) -> int:
        return math.floor((ts_ms - self.size_ms) / self.step_ms) * self.step_ms + self.step_ms

    def expires_at(self, watermark: float) -> float:
        """The partition clock at which an asset with this watermark expires."""
        return watermark + self.idle_ms

    def beyond_horizon(self, ts_ms: float, stream_ms: float) -> bool:
        """True when a record is late for every asset: its window may have been emitted
        by an asset that has expired since (see the module docstring)."""
        horizon = stream_ms - self.idle_ms
        if self.kind == "cycle":
            return ts_ms <= horizon
        return self._first_start(ts_ms) <= horizon


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
    """Everything the table keeps for one asset; serialised as one value."""

    offsets: dict[int, int] = field(default_factory=dict)
    watermark: float = -math.inf
    max_cycle: int = -1
    closed_cycle: int = -1
    names: list[str] = field(default_factory=list)
    panes: dict[int, Pane] = field(default_factory=dict)

    _HEADER = struct.Struct("<2sdqqHHI")
    _OFFSET = struct.Struct("<iq")
    _PANE = struct.Struct("<qdddqH")
    _MAGIC = b"F1"

    def to_bytes(self) -> bytes:
        """Compact binary form: a header, the signal names, then each pane's array."""
        parts = [
            self._HEADER.pack(
                self._MAGIC,
                self.watermark,
                self.max_cycle,
                self.closed_cycle,
                len(self.offsets),
                len(self.names),
                len(self.panes),
            )
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
        if header[0] != cls._MAGIC:
            raise ValueError("not a feature state value")
        _, watermark, max_cycle, closed_cycle, n_offsets, n_names, n_panes = header
        pos = cls._HEADER.size
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
        return cls(offsets, watermark, max_cycle, closed_cycle, names, panes)

    @classmethod
    def watermark_of(cls, data: bytes) -> float:
        """The watermark of a serialised state, without decoding the rest."""
        return struct.unpack_from("<d", data, 2)[0]

    def padded(self, pane: Pane) -> np.ndarray:
        """The pane's accumulators with a row for every signal the asset has seen."""
        missing = len(self.names) - len(pane.acc)
        if missing > 0:
            pane.acc = np.concatenate([pane.acc, acc_ops.empty(missing)])
        return pane.acc


@dataclass(slots=True)
class Record:
    """One input event as the extractor sees it; `ref` is handed back for dead letters.

    `source` names the offset sequence `offset` belongs to: DIRECT for the asset's own
    `telemetry` partition, else the `telemetry` partition a repartitioned record came
    from (its original offset travels with it, so a re-forwarded copy is recognised).
    `stream_ms` is the clock of the asset's partition at this record (this record
    included), set once the batch's clock has seen it; the default never expires
    anything. Not frozen so that setting it costs an attribute store, not a copy.
    """

    asset_id: str
    source: int
    offset: int
    telemetry: Telemetry
    kafka_ts_ms: float
    ref: Any = None
    stream_ms: float = -math.inf


@dataclass(frozen=True, slots=True)
class Emission:
    """One `extracted-features` record, ready to send, and when its window closed."""

    asset_id: str
    window_end_ms: float
    value: bytes
    closed_at_ms: float


@dataclass(slots=True)
class BatchResult:
    """`states`: to write; `expired`: to delete after that (see `FeatureExtractor.process`)."""

    states: dict[str, AssetState] = field(default_factory=dict)
    expired: list[str] = field(default_factory=list)
    emissions: list[Emission] = field(default_factory=list)
    rejected: list[tuple[Any, str]] = field(default_factory=list)
    replayed: int = 0
    applied: int = 0


@dataclass(slots=True)
class _Progress:
    """How one asset's watermark rose during a batch, for the close-to-emit latency."""

    before: float
    watermarks: list[float] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    cycle_closed_at: dict[int, float] = field(default_factory=dict)

    def closed_at(self, threshold: float) -> float:
        """Kafka timestamp of the record whose event time first reached `threshold`."""
        index = bisect.bisect_left(self.watermarks, threshold)
        return self.arrivals[index] if index < len(self.arrivals) else math.nan


@dataclass(slots=True)
class _Samples:
    """Records of one pane in this batch, waiting for the vectorised update."""

    asset: AssetState
    pane: Pane
    times: list[float] = field(default_factory=list)
    signals: list[dict[str, float]] = field(default_factory=list)


class FeatureExtractor:
    """Applies batches of records to asset states and returns what to emit.

    `signals`/`features` select what is emitted (empty: everything).
    """

    def __init__(
        self, spec: WindowSpec, signals: list[str] | None = None, features: list[str] | None = None
    ) -> None:
        unknown = set(features or ()) - set(acc_ops.FEATURES)
        if unknown:
            raise ValueError(f"unknown features {sorted(unknown)}; known: {acc_ops.FEATURES}")
        self.spec = spec
        self.signals = frozenset(signals) if signals else None
        self.features = tuple(f for f in acc_ops.FEATURES if not features or f in features)
        self._keys: dict[str, list[str]] = {}

    def process(
        self,
        records: dict[str, list[Record]],
        states: dict[str, AssetState],
        stream_end: dict[str, float] | None = None,
    ) -> BatchResult:
        """Apply each asset's records (in offset order) to its state; close what is due.

        `states` holds the current state of the assets that have one (it may hold
        assets without records, to be checked for expiry); `stream_end` the clock of
        each asset's partition at the end of the batch. The result's `states` holds the
        new state of every asset of the batch; `expired` the assets that expired at the
        end of the batch, whose windows are all emitted now: delete them, but only after
        their new state (if any), which records the offsets they applied, is written.
        """
        result = BatchResult()
        pending: dict[tuple[int, int], _Samples] = {}
        retired: list[tuple[str, AssetState, _Progress]] = []
        lives: dict[str, tuple[AssetState, _Progress]] = {}
        for asset_id, asset_records in records.items():
            state = states.get(asset_id) or AssetState()
            lives[asset_id] = self._apply(asset_id, state, asset_records, pending, result, retired)
        for asset_id, state in states.items():
            if asset_id not in lives:
                lives[asset_id] = (state, _Progress(state.watermark))
        self._accumulate(pending.values())
        closing: list[_Closing] = []
        for asset_id, state, progress in retired:
            self._close(asset_id, state, progress, closing, expired=True)
        ends = stream_end or {}
        for asset_id, (state, progress) in lives.items():
            end = ends.get(asset_id)
            expired = end is not None and self.spec.expires_at(state.watermark) <= end
            self._close(asset_id, state, progress, closing, expired)
            if asset_id in records:
                result.states[asset_id] = state
            if expired:
                result.expired.append(asset_id)
        self._emit(closing, result)
        return result

    def _apply(
        self,
        asset_id: str,
        state: AssetState,
        asset_records: list[Record],
        pending: dict[tuple[int, int], _Samples],
        result: BatchResult,
        retired: list[tuple[str, AssetState, _Progress]],
    ) -> tuple[AssetState, _Progress]:
        """Sequential part: offset guard, expiry, lateness, watermark, pane choice, cycle
        closing. Returns the asset's state after its records (a new one if it expired)."""
        spec = self.spec
        cycles = spec.kind == "cycle"
        known = set(state.names)
        progress = _Progress(state.watermark)
        for record in asset_records:
            if record.offset <= state.offsets.get(record.source, -1):
                result.replayed += 1
                continue
            if state.watermark > -math.inf and spec.expires_at(state.watermark) <= record.stream_ms:
                # Expired before this record: its windows go out as they are (once this
                # batch's samples are in) and the record starts from nothing, exactly as
                # if the state had been deleted at the end of an earlier batch.
                retired.append((asset_id, state, progress))
                state = AssetState(offsets=state.offsets)
                known = set()
                progress = _Progress(state.watermark)
            state.offsets[record.source] = record.offset
            telemetry = record.telemetry
            ts = telemetry.ts_ms
            if spec.beyond_horizon(ts, record.stream_ms):
                if cycles and telemetry.cycle is None:
                    result.rejected.append((record.ref, NO_CYCLE))
                else:
                    result.rejected.append((record.ref, LATE))
                continue
            if cycles:
                if telemetry.cycle is None:
                    result.rejected.append((record.ref, NO_CYCLE))
                    continue
                if telemetry.cycle <= state.closed_cycle:
                    result.rejected.append((record.ref, LATE))
                    continue
                key = telemetry.cycle
            else:
                if spec.is_late(ts, state.watermark):
                    result.rejected.append((record.ref, LATE))
                    continue
                key = spec.pane_of(ts)
            result.applied += 1
            signals = telemetry.signals
            for name in signals:
                if name not in known and (self.signals is None or name in self.signals):
                    known.add(name)
                    state.names.append(name)
            pane = state.panes.get(key)
            if pane is None:
                origin = ts if cycles else float(key)
                pane = state.panes[key] = Pane(key, origin, ts, ts, 0, acc_ops.empty(0))
            pane.count += 1
            pane.first_ts = min(pane.first_ts, ts)
            pane.last_ts = max(pane.last_ts, ts)
            samples = pending.get((id(state), key))
            if samples is None:
                samples = pending[(id(state), key)] = _Samples(state, pane)
            samples.times.append((ts - pane.origin) / 1000.0)
            samples.signals.append(signals)
            advanced = ts > state.watermark
            if advanced:
                state.watermark = ts
                progress.watermarks.append(ts)
                progress.arrivals.append(record.kafka_ts_ms)
            if cycles and (advanced or key > state.max_cycle):
                state.max_cycle = max(state.max_cycle, key)
                self._close_cycles(state, record.kafka_ts_ms, progress)
        return state, progress

    def _close_cycles(self, state: AssetState, arrival: float, progress: _Progress) -> None:
        """Mark closed, oldest first, every cycle a later cycle and the grace have passed."""
        grace = self.spec.grace_ms
        for key in sorted(k for k in state.panes if k > state.closed_cycle):
            if key >= state.max_cycle or state.panes[key].last_ts + grace > state.watermark:
                return
            state.closed_cycle = key
            progress.cycle_closed_at[key] = arrival

    @staticmethod
    def _accumulate(groups: Any) -> None:
        """Vectorised part: the k-th sample of every pane row is applied in one numpy pass.

        Each row still sees its samples in record order through the same operations, so
        the floats are those of a scalar, record-at-a-time update.
        """
        groups = [group for group in groups if group.asset.names]
        if not groups:
            return
        blocks = []
        offset = 0
        rounds = 0
        for group in groups:
            names = group.asset.names
            acc = group.asset.padded(group.pane)
            values = np.array(
                [[signals.get(name, np.nan) for name in names] for signals in group.signals],
                dtype=np.float64,
            )
            blocks.append((group, offset, values, acc))
            offset += len(names)
            rounds = max(rounds, len(values))
        cells = offset
        x = np.full((rounds, cells), np.nan)
        t = np.zeros((rounds, cells))
        for group, start, values, _ in blocks:
            stop = start + values.shape[1]
            x[: len(values), start:stop] = values
            t[: len(values), start:stop] = np.asarray(group.times)[:, None]
        state = np.concatenate([acc for *_, acc in blocks])
        with np.errstate(invalid="ignore", over="ignore"):
            for r in range(rounds):
                row = x[r]
                present = np.flatnonzero(~np.isnan(row))
                if len(present) == cells:
                    acc_ops.update(state, row, t[r])
                elif len(present):
                    subset = state[present]
                    acc_ops.update(subset, row[present], t[r, present])
                    state[present] = subset
        for group, start, values, _ in blocks:
            group.pane.acc = state[start : start + values.shape[1]].copy()

    def _close(
        self,
        asset_id: str,
        state: AssetState,
        progress: _Progress,
        closing: list[_Closing],
        expired: bool = False,
    ) -> None:
        """Emit the windows that closed during this batch, oldest first; drop dead panes.

        `expired`: every window not emitted before this batch closes, and no pane is left.
        """
        spec = self.spec
        if spec.kind == "cycle":
            for key in sorted(k for k in state.panes if expired or k <= state.closed_cycle):
                pane = state.panes.pop(key)
                window = _Window(pane.first_ts, pane.last_ts, pane.count, state.padded(pane))
                closed_at = progress.cycle_closed_at.get(key, math.nan)
                closing.append(_Closing(asset_id, state.names, window, closed_at, key))
            return
        before = progress.before
        watermark = math.inf if expired else state.watermark
        if watermark == before:
            return
        grace = spec.grace_ms
        starts = sorted(
            {
                start
                for key in state.panes
                for start in spec.windows_of_pane(key)
                if before < start + spec.size_ms + grace <= watermark
            }
        )
        for start in starts:
            window = self._merge(state, start)
            if window.count:
                closed_at = progress.closed_at(start + spec.size_ms + grace)
                closing.append(_Closing(asset_id, state.names, window, closed_at, None))
        for key in list(state.panes):
            last_start = math.floor(key / spec.step_ms) * spec.step_ms
            if last_start + spec.size_ms + grace <= watermark:
                del state.panes[key]

    def open_windows(self, state: AssetState) -> int:
        """How many windows of this asset hold data and have not closed."""
        spec = self.spec
        if spec.kind != "hopping":
            return sum(1 for key in state.panes if key > state.closed_cycle or spec.kind != "cycle")
        closing = state.watermark - spec.size_ms - spec.grace_ms
        return len(
            {start for key in state.panes for start in spec.windows_of_pane(key) if start > closing}
        )

    def _merge(self, state: AssetState, start: int) -> _Window:
        """The window starting at `start`, from its panes in time order."""
        spec = self.spec
        end = start + spec.size_ms
        merged: np.ndarray | None = None
        count = 0
        for key in sorted(k for k in state.panes if start <= k < end):
            pane = state.panes[key]
            acc = state.padded(pane)
            if pane.origin != start:
                acc = acc_ops.shift_time(acc, (pane.origin - start) / 1000.0)
            merged = acc if merged is None else acc_ops.merge(merged, acc)
            count += pane.count
        if merged is None:
            merged = acc_ops.empty(len(state.names))
        return _Window(float(start), float(end), count, merged)

    def _emit(self, closing: list[_Closing], result: BatchResult) -> None:
        """The `extracted-features` records of the closed windows, in closing order.

        The features of the rows of up to EMIT_CHUNK windows come from one vectorised
        pass: each is elementwise, so a row's values do not depend on what it is stacked
        with, and the chunks bound the Python floats alive at once (a batch may close
        tens of thousands of windows).
        """
        for start in range(0, len(closing), EMIT_CHUNK):
            self._emit_chunk(closing[start : start + EMIT_CHUNK], result)

    def _emit_chunk(self, closing: list[_Closing], result: BatchResult) -> None:
        values = acc_ops.features(np.concatenate([item.window.acc for item in closing]))
        columns = [(feature, values[feature].tolist()) for feature in self.features]
        counts = values["count"].tolist()
        isfinite = math.isfinite
        first_row = 0
        for item in closing:
            names = item.names
            features: dict[str, float | int | None] = {}
            for row in sorted(range(len(names)), key=names.__getitem__):
                index = first_row + row
                if counts[index] == 0:
                    continue
                keys = self._feature_keys(names[row])
                for (feature, column), key in zip(columns, keys, strict=True):
                    number = column[index]
                    if feature == "count":
                        features[key] = int(number)
                    else:
                        features[key] = number if isfinite(number) else None
            first_row += len(names)
            result.emissions.append(self._emission(item, features))

    def _feature_keys(self, name: str) -> list[str]:
        """`<signal>_<feature>` for each emitted feature, built once per signal."""
        keys = self._keys.get(name)
        if keys is None:
            keys = self._keys[name] = [f"{name}_{feature}" for feature in self.features]
        return keys

    def _emission(self, item: _Closing, features: dict[str, float | int | None]) -> Emission:
        window = item.window
        value = encode_features(
            item.asset_id,
            features,
            window.start,
            window.end,
            window.count,
            self.spec.kind,
            item.cycle,
        )
        return Emission(item.asset_id, window.end, value, item.closed_at_ms)


@dataclass(frozen=True, slots=True)
class _Window:
    start: float
    end: float
    count: int
    acc: np.ndarray


@dataclass(frozen=True, slots=True)
class _Closing:
    """A window that closed during a batch, waiting for the vectorised feature pass."""

    asset_id: str
    names: list[str]
    window: _Window
    closed_at_ms: float
    cycle: int | None
