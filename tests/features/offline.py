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

from streamapp.features.windows import WindowSpec
from streamapp.ingest.validation import Telemetry, format_ts


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
    spec: WindowSpec, records: list[Any]
) -> tuple[dict[tuple[str, str], dict[str, Any]], list[Any]]:
    """Expected emissions keyed by (asset_id, window end) and the refs of rejected records.

    `records` are objects with `asset_id`, `telemetry` and `ref`, in offset order.
    """
    by_asset: dict[str, list[Any]] = defaultdict(list)
    for record in records:
        by_asset[record.asset_id].append(record)
    expected: dict[tuple[str, str], dict[str, Any]] = {}
    rejected: list[Any] = []
    grace = spec.grace_ms
    for asset, items in by_asset.items():
        watermark = -math.inf
        if spec.kind == "cycle":
            cycles: dict[int, list[Telemetry]] = defaultdict(list)
            closed, top = -1, -1
            for item in items:
                row = item.telemetry
                if row.cycle is None or row.cycle <= closed:
                    rejected.append(item.ref)
                    continue
                cycles[row.cycle].append(row)
                watermark = max(watermark, row.ts_ms)
                top = max(top, row.cycle)
                for cycle in sorted(c for c in cycles if c > closed):
                    last = max(r.ts_ms for r in cycles[cycle])
                    if cycle >= top or last + grace > watermark:
                        break
                    closed = cycle
            for cycle in sorted(c for c in cycles if c <= closed):
                rows = cycles[cycle]
                start, end = min(r.ts_ms for r in rows), max(r.ts_ms for r in rows)
                expected[(asset, format_ts(end))] = _record(asset, rows, start, end, cycle)
            continue
        windows: dict[int, list[Telemetry]] = defaultdict(list)
        for item in items:
            row = item.telemetry
            starts = [
                s
                for s in range(
                    math.floor((row.ts_ms - spec.size_ms) / spec.step_ms) * spec.step_ms,
                    math.floor(row.ts_ms / spec.step_ms) * spec.step_ms + 1,
                    spec.step_ms,
                )
                if s <= row.ts_ms < s + spec.size_ms
            ]
            if starts[0] + spec.size_ms + grace <= watermark:
                rejected.append(item.ref)
                continue
            watermark = max(watermark, row.ts_ms)
            for start in starts:
                windows[start].append(row)
        for start, rows in windows.items():
            end = start + spec.size_ms
            if end + grace <= watermark:
                expected[(asset, format_ts(end))] = _record(asset, rows, start, end, None)
    return expected, rejected
