"""The feature extractor: batches of records applied to asset states, closed windows out."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamapp.contracts.telemetry import Telemetry
from streamapp.features import accumulators as acc_ops
from streamapp.features.windows.emission import Emission, Emitter
from streamapp.features.windows.kinds import ClosedWindow, Progress, Windows
from streamapp.features.windows.state import AssetState, Pane

DIRECT = -1


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
        self, windows: Windows, signals: list[str] | None = None, features: list[str] | None = None
    ) -> None:
        unknown = set(features or ()) - set(acc_ops.FEATURES)
        if unknown:
            raise ValueError(f"unknown features {sorted(unknown)}; known: {acc_ops.FEATURES}")
        self.windows = windows
        self.signals = frozenset(signals) if signals else None
        self.emitter = Emitter(
            windows.kind, tuple(f for f in acc_ops.FEATURES if not features or f in features)
        )

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
        retired: list[tuple[str, AssetState, Progress]] = []
        lives: dict[str, tuple[AssetState, Progress]] = {}
        for asset_id, asset_records in records.items():
            state = states.get(asset_id) or AssetState()
            lives[asset_id] = self._apply(asset_id, state, asset_records, pending, result, retired)
        for asset_id, state in states.items():
            if asset_id not in lives:
                lives[asset_id] = (state, Progress(state.watermark))
        self._accumulate(pending.values())
        windows = self.windows
        closed: list[ClosedWindow] = []
        for asset_id, state, progress in retired:
            closed += windows.close(asset_id, state, progress, expired=True)
        ends = stream_end or {}
        for asset_id, (state, progress) in lives.items():
            end = ends.get(asset_id)
            expired = end is not None and windows.expires_at(state.watermark) <= end
            closed += windows.close(asset_id, state, progress, expired)
            if asset_id in records:
                result.states[asset_id] = state
            if expired:
                result.expired.append(asset_id)
        result.emissions = self.emitter.emit(closed)
        return result

    def open_windows(self, state: AssetState) -> int:
        """How many windows of this asset hold data and have not closed."""
        return self.windows.open_windows(state)

    def _apply(
        self,
        asset_id: str,
        state: AssetState,
        asset_records: list[Record],
        pending: dict[tuple[int, int], _Samples],
        result: BatchResult,
        retired: list[tuple[str, AssetState, Progress]],
    ) -> tuple[AssetState, Progress]:
        """Sequential part: offset guard, expiry, lateness, watermark, pane choice, and
        what the window kind does after a record. Returns the asset's state after its
        records (a new one if it expired)."""
        windows = self.windows
        known = set(state.names)
        progress = Progress(state.watermark)
        for record in asset_records:
            if record.offset <= state.offsets.get(record.source, -1):
                result.replayed += 1
                continue
            if (
                state.watermark > -math.inf
                and windows.expires_at(state.watermark) <= record.stream_ms
            ):
                # Expired before this record: its windows go out as they are (once this
                # batch's samples are in) and the record starts from nothing, exactly as
                # if the state had been deleted at the end of an earlier batch.
                retired.append((asset_id, state, progress))
                state = AssetState(offsets=state.offsets)
                known = set()
                progress = Progress(state.watermark)
            state.offsets[record.source] = record.offset
            telemetry = record.telemetry
            ts = telemetry.ts_ms
            if windows.beyond_horizon(ts, record.stream_ms):
                result.rejected.append((record.ref, windows.horizon_reason(telemetry)))
                continue
            key = windows.pane_key(telemetry, state)
            if isinstance(key, str):
                result.rejected.append((record.ref, key))
                continue
            result.applied += 1
            signals = telemetry.signals
            for name in signals:
                if name not in known and (self.signals is None or name in self.signals):
                    known.add(name)
                    state.names.append(name)
            pane = state.panes.get(key)
            if pane is None:
                origin = windows.pane_origin(key, ts)
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
            windows.applied(state, key, advanced, record.kafka_ts_ms, progress)
        return state, progress

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
