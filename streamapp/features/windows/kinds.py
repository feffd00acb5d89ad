"""The window kinds, one class each behind `Windows`: tumbling, hopping and cycle windows.

A kind decides three things for the extractor: which pane a record updates (or why it
is late), when a window closes, and how a closed window is made of its panes. Time
windows are epoch aligned; a hopping window is made of panes of gcd(size, step), so a
record costs one update however many windows overlap it. See the package docstring for
the lateness and expiry rules they implement.
"""

from __future__ import annotations

import bisect
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np

from streamapp.contracts.telemetry import Telemetry
from streamapp.features import accumulators as acc_ops
from streamapp.features.windows.state import AssetState

WindowKind = Literal["tumbling", "hopping", "cycle"]
LATE = "late"
NO_CYCLE = "late: no cycle field, required by cycle windows"


@dataclass(slots=True)
class Progress:
    """How one asset's watermark rose during a batch, for the close-to-emit latency."""

    before: float
    watermarks: list[float] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    cycle_closed_at: dict[int, float] = field(default_factory=dict)

    def closed_at(self, threshold: float) -> float:
        """Kafka timestamp of the record whose event time first reached `threshold`."""
        index = bisect.bisect_left(self.watermarks, threshold)
        return self.arrivals[index] if index < len(self.arrivals) else math.nan


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    """A window that closed during a batch, waiting for the vectorised feature pass."""

    asset_id: str
    names: list[str]
    start: float
    end: float
    count: int
    acc: np.ndarray
    closed_at_ms: float
    cycle: int | None


@dataclass(frozen=True, slots=True)
class Windows(ABC):
    """One window kind's shape (integer milliseconds) and rules; `idle_ms`: the idle
    timeout after which an asset expires (inf: never)."""

    kind: ClassVar[WindowKind]
    #: What `least_idle_ms` is, in words, for the error that refuses a shorter timeout.
    least_idle_rule: ClassVar[str] = "size + grace"
    size_ms: int
    grace_ms: float
    idle_ms: float

    @property
    def step_ms(self) -> int:
        return self.size_ms

    @property
    def least_idle_ms(self) -> float:
        """The shortest idle timeout: any shorter, and an asset reporting on time would
        have its newest window closed by silence before its own clock could close it."""
        return self.size_ms + self.grace_ms

    def expires_at(self, watermark: float) -> float:
        """The partition clock at which an asset with this watermark expires."""
        return watermark + self.idle_ms

    @abstractmethod
    def beyond_horizon(self, ts_ms: float, stream_ms: float) -> bool:
        """True when a record is late for every asset: its window may have been emitted
        by an asset that has expired since."""

    def horizon_reason(self, telemetry: Telemetry) -> str:
        """The dead-letter reason of a record beyond the horizon."""
        return LATE

    @abstractmethod
    def pane_key(self, telemetry: Telemetry, state: AssetState) -> int | str:
        """The pane the record updates, or the reason it is late."""

    @abstractmethod
    def pane_origin(self, key: int, ts_ms: float) -> float:
        """The zero of a new pane's sample times."""

    def applied(
        self, state: AssetState, key: int, advanced: bool, arrival: float, progress: Progress
    ) -> None:
        """After a record updated pane `key` (and the watermark, if `advanced`): time
        windows have nothing to do; cycle windows close the cycles it completed."""
        return

    @abstractmethod
    def close(
        self, asset_id: str, state: AssetState, progress: Progress, expired: bool
    ) -> list[ClosedWindow]:
        """The windows that closed during this batch, oldest first; drops dead panes.

        `expired`: every window not emitted before this batch closes, and no pane is left.
        """

    @abstractmethod
    def open_windows(self, state: AssetState) -> int:
        """How many windows of this asset hold data and have not closed."""


@dataclass(frozen=True, slots=True)
class TimeWindows(Windows):
    """Epoch-aligned windows [start, start + size) that close at end + grace."""

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
        return list(range(self._first_start(ts_ms), last + 1, self.step_ms))

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

    def beyond_horizon(self, ts_ms: float, stream_ms: float) -> bool:
        return self._first_start(ts_ms) <= stream_ms - self.idle_ms

    def pane_key(self, telemetry: Telemetry, state: AssetState) -> int | str:
        if self.is_late(telemetry.ts_ms, state.watermark):
            return LATE
        return self.pane_of(telemetry.ts_ms)

    def pane_origin(self, key: int, ts_ms: float) -> float:
        return float(key)

    def close(
        self, asset_id: str, state: AssetState, progress: Progress, expired: bool
    ) -> list[ClosedWindow]:
        before = progress.before
        watermark = math.inf if expired else state.watermark
        if watermark == before:
            return []
        size, grace = self.size_ms, self.grace_ms
        starts = sorted(
            {
                start
                for key in state.panes
                for start in self.windows_of_pane(key)
                if before < start + size + grace <= watermark
            }
        )
        closed = []
        for start in starts:
            count, acc = self._merge(state, start)
            if count:
                closed_at = progress.closed_at(start + size + grace)
                closed.append(
                    ClosedWindow(
                        asset_id, state.names, start, start + size, count, acc, closed_at, None
                    )
                )
        for key in list(state.panes):
            last_start = math.floor(key / self.step_ms) * self.step_ms
            if last_start + size + grace <= watermark:
                del state.panes[key]
        return closed

    def _merge(self, state: AssetState, start: int) -> tuple[int, np.ndarray]:
        """The count and accumulators of the window starting at `start`, from its panes in
        time order."""
        end = start + self.size_ms
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
        return count, merged


@dataclass(frozen=True, slots=True)
class TumblingWindows(TimeWindows):
    """Back-to-back windows: each record is in exactly one, its only pane."""

    kind: ClassVar[WindowKind] = "tumbling"

    def open_windows(self, state: AssetState) -> int:
        return len(state.panes)


@dataclass(frozen=True, slots=True)
class HoppingWindows(TimeWindows):
    """Windows of `size_ms` every `hop_ms` (<= size): a record is in size/hop of them."""

    kind: ClassVar[WindowKind] = "hopping"
    hop_ms: int

    @property
    def step_ms(self) -> int:
        return self.hop_ms

    def open_windows(self, state: AssetState) -> int:
        closing = state.watermark - self.size_ms - self.grace_ms
        return len(
            {start for key in state.panes for start in self.windows_of_pane(key) if start > closing}
        )


@dataclass(frozen=True, slots=True)
class CycleWindows(Windows):
    """One window per operating cycle (the record's `cycle`): it closes when a later cycle
    has been seen and the watermark reaches the cycle's last timestamp + grace."""

    kind: ClassVar[WindowKind] = "cycle"
    least_idle_rule: ClassVar[str] = "grace"

    @property
    def least_idle_ms(self) -> float:
        return self.grace_ms

    def beyond_horizon(self, ts_ms: float, stream_ms: float) -> bool:
        return ts_ms <= stream_ms - self.idle_ms

    def horizon_reason(self, telemetry: Telemetry) -> str:
        return NO_CYCLE if telemetry.cycle is None else LATE

    def pane_key(self, telemetry: Telemetry, state: AssetState) -> int | str:
        if telemetry.cycle is None:
            return NO_CYCLE
        if telemetry.cycle <= state.closed_cycle:
            return LATE
        return telemetry.cycle

    def pane_origin(self, key: int, ts_ms: float) -> float:
        return ts_ms

    def applied(
        self, state: AssetState, key: int, advanced: bool, arrival: float, progress: Progress
    ) -> None:
        if advanced or key > state.max_cycle:
            state.max_cycle = max(state.max_cycle, key)
            self._close_cycles(state, arrival, progress)

    def _close_cycles(self, state: AssetState, arrival: float, progress: Progress) -> None:
        """Mark closed, oldest first, every cycle a later cycle and the grace have passed."""
        for key in sorted(k for k in state.panes if k > state.closed_cycle):
            if key >= state.max_cycle or state.panes[key].last_ts + self.grace_ms > state.watermark:
                return
            state.closed_cycle = key
            progress.cycle_closed_at[key] = arrival

    def close(
        self, asset_id: str, state: AssetState, progress: Progress, expired: bool
    ) -> list[ClosedWindow]:
        closed = []
        for key in sorted(k for k in state.panes if expired or k <= state.closed_cycle):
            pane = state.panes.pop(key)
            closed_at = progress.cycle_closed_at.get(key, math.nan)
            acc = state.padded(pane)
            closed.append(
                ClosedWindow(
                    asset_id,
                    state.names,
                    pane.first_ts,
                    pane.last_ts,
                    pane.count,
                    acc,
                    closed_at,
                    key,
                )
            )
        return closed

    def open_windows(self, state: AssetState) -> int:
        return sum(1 for key in state.panes if key > state.closed_cycle)


def build_windows(
    kind: WindowKind,
    size_s: float,
    step_s: float | None,
    grace_s: float,
    idle_s: float | None = None,
) -> Windows:
    """The windows of `kind` from settings in seconds (`idle_s` None: assets never expire)."""
    size_ms = round(size_s * 1000)
    hop_ms = size_ms if step_s is None else round(step_s * 1000)
    if size_ms <= 0 or (kind == "hopping" and hop_ms <= 0):
        raise ValueError("window size and step must be at least 1 ms")
    grace_ms = grace_s * 1000.0
    idle_ms = math.inf if idle_s is None else idle_s * 1000.0
    windows: Windows
    if kind == "tumbling":
        windows = TumblingWindows(size_ms, grace_ms, idle_ms)
    elif kind == "hopping":
        if hop_ms > size_ms:
            raise ValueError("hopping windows need step <= size")
        windows = HoppingWindows(size_ms, grace_ms, idle_ms, hop_ms)
    elif kind == "cycle":
        windows = CycleWindows(size_ms, grace_ms, idle_ms)
    else:
        raise ValueError(f"unknown window kind {kind!r}: tumbling, hopping or cycle")
    if idle_ms < windows.least_idle_ms:
        raise ValueError(
            f"the idle timeout must be at least {windows.least_idle_rule} "
            f"({windows.least_idle_ms / 1000:g} s)"
        )
    return windows
