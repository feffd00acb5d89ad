"""C-MAPSS through the live pipeline: engines' cycles as `telemetry`, scored at the end.

Each cycle becomes one telemetry record (asset_id = engine id, `cycle` set, one
second of event time per cycle, signals named like the C-MAPSS columns), engines
interleaved cycle by cycle as a live fleet would report. A cycle window closes
only when a later cycle has been seen, so after its last cycle each engine gets one
end-of-data marker record (next cycle, event time past the grace, flagged in
`metadata.end_of_data`): it closes the last real cycle and its own window never
closes, so it never yields features or a prediction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamapp.contracts.codec import format_ts
from streamapp.rul.training.data import CMAPSS_SIGNALS, load_cmapss
from streamapp.rul.training.scoring import coverage, phm08_score, rmse

BASE_TS_MS = 1_795_320_000_000.0
CYCLE_MS = 1000.0
SOURCE = "cmapss-replay"


@dataclass(frozen=True, slots=True)
class Engine:
    asset_id: str
    series: np.ndarray
    true_rul: float


def engines(
    data_dir: Path, subset: str, split: str, units: int | None, prefix: str
) -> list[Engine]:
    """The engines to replay, with the true RUL at their last observed cycle."""
    fleet = load_cmapss(data_dir, subset, split)
    chosen = range(len(fleet) if units is None else min(units, len(fleet)))
    return [
        Engine(f"{prefix}{int(fleet.units[i]):03d}", fleet.series[i], float(fleet.rul[i][-1]))
        for i in chosen
    ]


def _record(engine: Engine, cycle: int, row: np.ndarray, end_of_data: bool = False) -> bytes:
    metadata: dict[str, Any] = {"source": SOURCE}
    if end_of_data:
        metadata["end_of_data"] = True
    ts_ms = BASE_TS_MS + cycle * CYCLE_MS
    record = {
        "asset_id": engine.asset_id,
        "ts": format_ts(ts_ms),
        "cycle": cycle,
        "signals": {name: float(value) for name, value in zip(CMAPSS_SIGNALS, row, strict=True)},
        "metadata": metadata,
    }
    return json.dumps(record, separators=(",", ":")).encode()


def messages(fleet: list[Engine], grace_s: float) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) pairs: cycle 1 of every engine, then cycle 2, ..., then the markers."""
    longest = max(len(engine.series) for engine in fleet)
    for index in range(longest + 1):
        for engine in fleet:
            key = engine.asset_id.encode()
            if index < len(engine.series):
                yield key, _record(engine, index + 1, engine.series[index])
            elif index == len(engine.series):
                skip = math.ceil(grace_s * 1000.0 / CYCLE_MS) + 1
                yield key, _record(engine, index + skip, engine.series[-1], end_of_data=True)


def final_cycles(fleet: list[Engine]) -> dict[str, int]:
    return {engine.asset_id: len(engine.series) for engine in fleet}


def score(fleet: list[Engine], finals: dict[str, dict[str, Any]], cap: float) -> dict[str, Any]:
    """RMSE, PHM08 score and interval coverage of the final predictions (true RUL capped)."""
    scored = [engine for engine in fleet if engine.asset_id in finals]
    true = np.asarray([min(engine.true_rul, cap) for engine in scored])
    pred = np.asarray([finals[e.asset_id]["rul_prediction"] for e in scored])
    lower = np.asarray([finals[e.asset_id]["confidence_interval_lower"] for e in scored])
    upper = np.asarray([finals[e.asset_id]["confidence_interval_upper"] for e in scored])
    return {
        "engines": len(fleet),
        "predicted": len(scored),
        "rmse": rmse(pred, true) if scored else math.nan,
        "score": phm08_score(pred, true) if scored else math.nan,
        "coverage": coverage(lower, upper, true) if scored else math.nan,
        "protocol": f"last cycle per engine; true RUL capped at {cap:g}",
    }
