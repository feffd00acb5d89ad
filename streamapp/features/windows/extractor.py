"""The feature extractor: batches of records applied to asset states, closed windows out."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
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


@dataclass(frozen=True, slots=True)
class Profile:
    """How the assets of one class are windowed: the window kind, the signals kept (None:
    all of them) and the emitter of their records."""

    windows: Windows
    signals: frozenset[str] | None
    emitter: Emitter

    @classmethod
    def of(
        cls,
        windows: Windows,
        signals: list[str] | tuple[str, ...] | None = None,
        features: list[str] | tuple[str, ...] | None = None,
        asset_class: str | None = None,
        bare_signal: str | None = None,
    ) -> Profile:
        """`signals`/`features` select what is emitted (empty: everything); `asset_class`
        is stamped on every record; the features of `bare_signal` are named bare."""
        unknown = set(features or ()) - set(acc_ops.FEATURES)
        if unknown:
            raise ValueError(f"unknown features {sorted(unknown)}; known: {acc_ops.FEATURES}")
        chosen = tuple(f for f in acc_ops.FEATURES if not features or f in features)
        emitter = Emitter(windows.kind, chosen, asset_class, bare_signal)
        return cls(windows, frozenset(signals) if signals else None, emitter)


class FeatureExtractor:
    """Applies batches of records to asset states and returns what to emit.

    Each asset is windowed by the profile of its class. A state takes its class from the
    record that starts it (`classify`) and keeps it while it lives, so an asset's windows
    never change kind in the middle; a state of a class with no profile (written before
    classes existed, or of a class since removed) follows the `default` profile.
    """

    def __init__(
        self,
        profiles: Mapping[str, Profile],
        default: str,
        classify: Callable[[Record], str] | None = None,
    ) -> None:
        if default not in profiles:
            raise ValueError(f"default class {default!r} has no profile")
        self.profiles = dict(profiles)
        self.default = default
        self.classify = classify or (lambda record: default)
        self.bucket_ms = min(profile.windows.size_ms for profile in self.profiles.values())

    @classmethod
    def single(
        cls, windows: Windows, signals: list[str] | None = None, features: list[str] | None = None
    ) -> FeatureExtractor:
        """One profile for every asset (records carry no class)."""
        return cls({"": Profile.of(windows, signals, features)}, "")

    def profile_of(self, state: AssetState) -> Profile:
        return self.profiles.get(state.asset_class) or self.profiles[self.default]

    def expires_at(self, watermark: float, asset_class: str) -> float:
        """The partition clock at which an asset of this class and watermark expires."""
        profile = self.profiles.get(asset_class) or self.profiles[self.default]
        return profile.windows.expires_at(watermark)

    def _new_state(self, record: Record, offsets: dict[int, int] | None = None) -> AssetState:
        """The state a record starts, of the record's class."""
        return AssetState(
            offsets={} if offsets is None else offsets, asset_class=self.classify(record)
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
            state = states.get(asset_id) or self._new_state(asset_records[0])
            lives[asset_id] = self._apply(asset_id, state, asset_records, pending, result, retired)
        for asset_id, state in states.items():
            if asset_id not in lives:
                lives[asset_id] = (state, Progress(state.watermark))
        self._accumulate(pending.values())
        # Closed windows per profile, the profiles in order of first closing.
        closed: dict[int, tuple[Profile, list[ClosedWindow]]] = {}

        def close(asset_id: str, state: AssetState, progress: Progress, expired: bool) -> None:
            profile = self.profile_of(state)
            windows = profile.windows.close(asset_id, state, progress, expired)
            if windows:
                closed.setdefault(id(profile), (profile, []))[1].extend(windows)

        for asset_id, state, progress in retired:
            close(asset_id, state, progress, True)
        ends = stream_end or {}
        for asset_id, (state, progress) in lives.items():
            end = ends.get(asset_id)
            expires = self.profile_of(state).windows.expires_at
            expired = end is not None and expires(state.watermark) <= end
            close(asset_id, state, progress, expired)
            if asset_id in records:
                result.states[asset_id] = state
            if expired:
                result.expired.append(asset_id)
        for profile, windows in closed.values():
            result.emissions += profile.emitter.emit(windows)
        return result

    def open_windows(self, state: AssetState) -> int:
        """How many windows of this asset hold data and have not closed."""
        return self.profile_of(state).windows.open_windows(state)

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
        records (a new one if it expired: its class comes from the record that starts it)."""
        profile = self.profile_of(state)
        windows = profile.windows
        keep = profile.signals
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
                state = self._new_state(record, state.offsets)
                profile = self.profile_of(state)
                windows, keep = profile.windows, profile.signals
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
                if name not in known and (keep is None or name in keep):
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
