"""Offline numpy feature computation over whole windows, from the definitions alone.

Used by the unit and integration tests as the independent reference: it keeps every
raw sample, decides lateness from the documented rules and computes each feature
with two-pass numpy formulas.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from streamapp.contracts.codec import format_ts
from streamapp.contracts.telemetry import Telemetry
from streamapp.features.windows import Windows


def numpy_features(x: np.ndarray, t: np.ndarray) -> dict[str, float]:
    mean = x.mean()
    d = x - mean
    m2 = np.mean(d**2)
    rms = np.sqrt(np.mean(x**2))
    dt = t - t.mean()
    return {
        "count": len(x),
        "mean": mean,
        "std": np.sqrt(m2),
        "min": x.min(),
        "max": x.max(),
        "rms": rms,
        "skewness": np.mean(d**3) / m2**1.5 if m2 > 0 else 0.0,
        "kurtosis": np.mean(d**4) / m2**2 if m2 > 0 else 0.0,
        "crest_factor": np.abs(x).max() / rms if rms > 0 else 0.0,
        "peak_to_peak": x.max() - x.min(),
        "slope": float(np.sum(dt * d) / np.sum(dt**2)) if np.sum(dt**2) > 0 else 0.0,
    }


def _record(asset: str, rows: list[Telemetry], start: float, end: float, cycle: int | None):
    features: dict[str, float] = {}
    names = sorted({name for row in rows for name in row.signals})
    for name in names:
        samples = [(row.ts_ms, row.signals[name]) for row in rows if name in row.signals]
        t_ms = np.array([s[0] for s in samples])
        x = np.array([s[1] for s in samples])
        for feature, value in numpy_features(x, (t_ms - t_ms.min()) / 1000.0).items():
            features[f"{name}_{feature}"] = value
    record: dict[str, Any] = {
        "asset_id": asset,
        "features": features,
        "window": {"start": format_ts(start), "end": format_ts(end), "count": len(rows)},
    }
    if cycle is not None:
        record["cycle"] = cycle
    return record


def offline_features(
    spec: Windows, records: list[Any]
) -> tuple[dict[tuple[str, str], dict[str, Any]], list[Any]]:
    """Expected emissions keyed by (asset_id, window end) and the refs of rejected records.

    `records` are objects with `asset_id`, `telemetry` and `ref` (and optionally
    `partition`, else all share one), in offset order. With a finite idle timeout, the
    clock of each partition is the largest `ts` seen there so far; an asset silent for
    the timeout on that clock expires: its open windows are emitted and it starts again
    from nothing; a record at or before the clock's horizon is late for every asset.
    """
    clocks: dict[Any, float] = defaultdict(lambda: -math.inf)
    by_asset: dict[str, list[tuple[Any, float]]] = defaultdict(list)
    partition_of: dict[str, Any] = {}
    for record in records:
        partition = getattr(record, "partition", 0)
        clocks[partition] = max(clocks[partition], record.telemetry.ts_ms)
        by_asset[record.asset_id].append((record, clocks[partition]))
        partition_of[record.asset_id] = partition
    expected: dict[tuple[str, str], dict[str, Any]] = {}
    rejected: list[Any] = []

    def emit(key: tuple[str, str], record: dict[str, Any]) -> None:
        assert key not in expected, f"window {key} emitted twice"
        expected[key] = record

    for asset, items in by_asset.items():
        life = _CycleLife(spec, asset) if spec.kind == "cycle" else _TimeLife(spec, asset)
        for item, clock in items:
            if life.watermark + spec.idle_ms <= clock:
                life.close(True, emit)
                life = type(life)(spec, asset)
            life.apply(item, clock, rejected)
        life.close(life.watermark + spec.idle_ms <= clocks[partition_of[asset]], emit)
    return expected, rejected


class _CycleLife:
    """One asset's cycles from its first record (or its expiry) on."""

    def __init__(self, spec: Windows, asset: str) -> None:
        self.spec, self.asset = spec, asset
        self.watermark = -math.inf
        self.cycles: dict[int, list[Telemetry]] = defaultdict(list)
        self.closed, self.top = -1, -1

    def apply(self, item: Any, clock: float, rejected: list[Any]) -> None:
        row = item.telemetry
        if row.cycle is None or row.cycle <= self.closed or row.ts_ms <= clock - self.spec.idle_ms:
            rejected.append(item.ref)
            return
        self.cycles[row.cycle].append(row)
        self.watermark = max(self.watermark, row.ts_ms)
        self.top = max(self.top, row.cycle)
        for cycle in sorted(c for c in self.cycles if c > self.closed):
            last = max(r.ts_ms for r in self.cycles[cycle])
            if cycle >= self.top or last + self.spec.grace_ms > self.watermark:
                break
            self.closed = cycle

    def close(self, expired: bool, emit: Any) -> None:
        for cycle in sorted(c for c in self.cycles if expired or c <= self.closed):
            rows = self.cycles[cycle]
            start, end = min(r.ts_ms for r in rows), max(r.ts_ms for r in rows)
            emit((self.asset, format_ts(end)), _record(self.asset, rows, start, end, cycle))


class _TimeLife:
    """One asset's time windows from its first record (or its expiry) on."""

    def __init__(self, spec: Windows, asset: str) -> None:
        self.spec, self.asset = spec, asset
        self.watermark = -math.inf
        self.windows: dict[int, list[Telemetry]] = defaultdict(list)

    def apply(self, item: Any, clock: float, rejected: list[Any]) -> None:
        spec, row = self.spec, item.telemetry
        starts = [
            s
            for s in range(
                math.floor((row.ts_ms - spec.size_ms) / spec.step_ms) * spec.step_ms,
                math.floor(row.ts_ms / spec.step_ms) * spec.step_ms + 1,
                spec.step_ms,
            )
            if s <= row.ts_ms < s + spec.size_ms
        ]
        closed = starts[0] + spec.size_ms + spec.grace_ms <= self.watermark
        if closed or starts[0] <= clock - spec.idle_ms:
            rejected.append(item.ref)
            return
        self.watermark = max(self.watermark, row.ts_ms)
        for start in starts:
            self.windows[start].append(row)

    def close(self, expired: bool, emit: Any) -> None:
        for start, rows in self.windows.items():
            end = start + self.spec.size_ms
            if expired or end + self.spec.grace_ms <= self.watermark:
                emit((self.asset, format_ts(end)), _record(self.asset, rows, start, end, None))
