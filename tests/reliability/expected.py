"""What a fault-free pipeline outputs, computed offline from the valid input alone."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from streamapp.contracts.codec import Invalid, format_ts
from streamapp.contracts.features import FeatureRecord, parse_feature_record
from streamapp.contracts.telemetry import Telemetry, validate_telemetry
from streamapp.contracts.tesla import decode_tesla
from streamapp.features.windows import Windows
from streamapp.rul.serving.ensemble import Ensemble
from streamapp.rul.serving.sequences import missing_features
from tests.features.offline import offline_features
from tests.reliability.corpus import Message

PREDICT_BATCH = 1024  # the agent's batches are this size or less; bounds the test's memory


def telemetry_records(
    telemetry: Iterable[Message], tesla: Iterable[Message], max_bytes: int
) -> list[SimpleNamespace]:
    """The records the feature agent applies, per asset in the order it sees them.

    Tesla records reach it re-encoded by the ingest agent (millisecond timestamps), so
    they are decoded, re-encoded and validated again here exactly as on that path.
    """
    records = []
    for message in telemetry:
        result = validate_telemetry(message.value, message.key, max_bytes)
        if isinstance(result, Telemetry):
            records.append(SimpleNamespace(asset_id=result.asset_id, telemetry=result, ref=None))
    for message in tesla:
        decoded = decode_tesla(message.value, max_bytes)
        if isinstance(decoded, Telemetry):
            again = validate_telemetry(decoded.to_bytes(), decoded.asset_id.encode(), max_bytes)
            assert isinstance(again, Telemetry), again
            records.append(SimpleNamespace(asset_id=again.asset_id, telemetry=again, ref=None))
    return records


def expected_windows(spec: Windows, records: list[SimpleNamespace]) -> dict[tuple[str, str], Any]:
    expected, late = offline_features(spec, records)
    assert late == [], "the valid traffic must not contain late records"
    return expected


def check_windows(emitted: dict[tuple[str, str], set[bytes]], expected: dict) -> None:
    """Every expected window emitted once in content, with numpy's values."""
    assert set(emitted) == set(expected), (
        f"missing {sorted(set(expected) - set(emitted))[:5]}, "
        f"unexpected {sorted(set(emitted) - set(expected))[:5]}"
    )
    for key, variants in emitted.items():
        assert len(variants) == 1, f"re-emission of {key} differs"
        record = json.loads(next(iter(variants)))
        want = expected[key]
        assert record["window"] == want["window"], key
        assert set(record["features"]) == set(want["features"]), key
        for name, number in record["features"].items():
            assert number == pytest.approx(want["features"][name], rel=1e-9, abs=1e-9), (key, name)


def expected_predictions(
    ensemble: Ensemble, feature_values: Iterable[bytes | None], max_bytes: int
) -> dict[tuple[str, str], float]:
    """The ensemble's RUL after each valid feature record, per asset in window-end order.

    Invalid records and records lacking a model feature are the RUL agent's dead
    letters and never enter a sequence; a re-sent window (same end) is applied once.
    """
    by_asset: dict[str, dict[float, FeatureRecord]] = defaultdict(dict)
    for value in feature_values:
        record = parse_feature_record(value, max_bytes)
        if isinstance(record, Invalid) or missing_features(record, ensemble.feature_names):
            continue
        by_asset[record.asset_id].setdefault(record.window_end_ms, record)
    keys: list[tuple[str, str]] = []
    windows = []
    for asset, records in by_asset.items():
        rows: list[dict[str, float]] = []
        for end_ms in sorted(records):
            rows.append({name: records[end_ms].features[name] for name in ensemble.feature_names})
            keys.append((asset, format_ts(end_ms)))
            windows.append(ensemble.build_window(rows))
    rul = [
        value
        for start in range(0, len(windows), PREDICT_BATCH)
        for value in ensemble.predict(np.stack(windows[start : start + PREDICT_BATCH])).rul
    ]
    return {key: float(value) for key, value in zip(keys, rul, strict=True)}


def check_predictions(
    emitted: dict[tuple[str, str], list[dict[str, Any]]], expected: dict[tuple[str, str], float]
) -> None:
    """One prediction per expected window, equal to the offline ensemble's."""
    assert set(emitted) == set(expected), (
        f"missing {sorted(set(expected) - set(emitted))[:5]}, "
        f"unexpected {sorted(set(emitted) - set(expected))[:5]}"
    )
    for key, records in emitted.items():
        for record in records:
            assert record["rul_prediction"] == pytest.approx(expected[key], abs=1e-3), key


def check_identical_repeats(emitted: dict[tuple[str, str], list[dict[str, Any]]]) -> int:
    """Every re-emission equals the first, field for field; returns how many there were."""
    repeats = 0
    for key, records in emitted.items():
        for other in records[1:]:
            repeats += 1
            diff = sorted(
                k for k in other.keys() | records[0].keys() if other.get(k) != records[0].get(k)
            )
            assert not diff, (
                f"re-emitted prediction of {key} differs in {diff}: "
                f"{[records[0].get(k) for k in diff]} != {[other.get(k) for k in diff]}"
            )
    return repeats
