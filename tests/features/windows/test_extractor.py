"""Window assignment, lateness, the offset guard and deterministic emission (no broker)."""

from __future__ import annotations

import itertools
import json
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamapp.contracts.codec import format_ts, parse_ts
from streamapp.contracts.telemetry import Telemetry
from streamapp.features.windows import (
    DIRECT,
    LATE,
    NO_CYCLE,
    AssetState,
    FeatureExtractor,
    Profile,
    Record,
    Windows,
    build_windows,
)
from tests.features.offline import offline_features

T0 = 1_795_320_000_000.0


def make_records(asset: str, points: list[tuple[float, dict[str, float], int | None]]):
    return [
        Record(asset, DIRECT, offset, Telemetry(asset, ts, signals, cycle), ts + 5, ref=offset)
        for offset, (ts, signals, cycle) in enumerate(points)
    ]


def run(extractor: FeatureExtractor, records: list[Record], cuts: list[int]):
    """Feed records in batches split at `cuts`, carrying state through bytes like the table."""
    stored: dict[str, bytes] = {}
    emitted, rejected = [], []
    bounds = [0, *sorted(cuts), len(records)]
    for lo, hi in itertools.pairwise(bounds):
        batch: dict[str, list[Record]] = {}
        for record in records[lo:hi]:
            batch.setdefault(record.asset_id, []).append(record)
        states = {a: AssetState.from_bytes(stored[a]) for a in batch if a in stored}
        result = extractor.process(batch, states)
        for asset, state in result.states.items():
            stored[asset] = state.to_bytes()
        emitted += [e.value for e in result.emissions]
        rejected += result.rejected
    return emitted, rejected, stored


def test_tumbling_and_hopping_window_assignment() -> None:
    tumbling = build_windows("tumbling", 10, None, 5)
    assert tumbling.window_starts(T0 + 12_345) == [T0 + 10_000]
    assert tumbling.pane_of(T0 + 9_999.5) == T0
    hopping = build_windows("hopping", 10, 4, 0)
    assert hopping.pane_ms == 2000
    assert hopping.window_starts(T0 + 12_000) == [T0 + 4_000, T0 + 8_000, T0 + 12_000]
    assert list(hopping.windows_of_pane(int(T0 + 12_000))) == [T0 + 4_000, T0 + 8_000, T0 + 12_000]
    assert not hopping.is_late(T0 + 12_000, T0 + 13_999)
    assert hopping.is_late(T0 + 12_000, T0 + 14_000)  # [4s, 14s) closed at 14 s (no grace)
    with pytest.raises(ValueError):
        build_windows("hopping", 10, 20, 0)


def test_late_record_is_rejected_and_window_emitted_once() -> None:
    extractor = FeatureExtractor.single(build_windows("tumbling", 10, None, 2))
    points = [(T0 + i * 1000, {"a": float(i)}, None) for i in range(13)]
    points.append((T0 + 5_000, {"a": 99.0}, None))  # window [0,10) closed at 12 s
    emitted, rejected, _ = run(extractor, make_records("A", points), [])
    assert rejected == [(13, LATE)]
    assert len(emitted) == 1
    record = json.loads(emitted[0])
    assert record["window"] == {"start": format_ts(T0), "end": format_ts(T0 + 10_000), "count": 10}
    assert record["features"]["a_mean"] == 4.5 and record["features"]["a_count"] == 10
    assert record["timestamp"] == record["window"]["end"]


def test_replayed_offsets_are_skipped() -> None:
    extractor = FeatureExtractor.single(build_windows("tumbling", 10, None, 0))
    records = make_records("A", [(T0 + i * 1000, {"a": float(i)}, None) for i in range(25)])
    once, _, state_once = run(extractor, records, [])
    twice, _, state_twice = run(extractor, records[:15] + records[5:], [15])
    assert once == twice and state_once == state_twice


def test_cycle_windows_close_after_a_later_cycle_and_the_grace() -> None:
    extractor = FeatureExtractor.single(build_windows("cycle", 10, None, 1))
    points = []
    for cycle in (1, 2, 3):
        points += [(T0 + cycle * 10_000 + i * 400, {"s": cycle + i}, cycle) for i in range(3)]
    points.append((T0 + 12_000, {"s": 0.0}, 1))  # cycle 1 closed by cycle 2 + 1 s grace
    points.append((T0 + 40_000, {"s": 0.0}, None))
    emitted, rejected, stored = run(extractor, make_records("E", points), [4])
    assert rejected == [(9, LATE), (10, NO_CYCLE)]
    cycles = [json.loads(value)["metadata"]["cycle"] for value in emitted]
    assert cycles == [1, 2]
    first = json.loads(emitted[0])
    assert first["window"]["start"] == format_ts(T0 + 10_000)
    assert first["window"]["end"] == format_ts(T0 + 10_800)
    assert set(AssetState.from_bytes(stored["E"]).panes) == {3}


def test_selected_signals_and_features() -> None:
    windows = build_windows("tumbling", 1, None, 0)
    extractor = FeatureExtractor.single(windows, ["a"], ["mean", "rms"])
    points = [(T0 + i * 500, {"a": 1.0, "b": 2.0}, None) for i in range(3)]
    emitted, _, _ = run(extractor, make_records("A", points), [])
    assert json.loads(emitted[0])["features"] == {"a_mean": 1.0, "a_rms": 1.0}
    with pytest.raises(ValueError):
        FeatureExtractor.single(build_windows("tumbling", 1, None, 0), None, ["median"])


def simulated(assets: int, per_asset: int, seed: int, jitter_ms: float) -> list[Record]:
    """Several assets, irregular sampling, occasional missing signals and disorder."""
    rng = random.Random(seed)
    records = []
    clocks = {f"A{i}": T0 + rng.uniform(0, 3000) for i in range(assets)}
    for step in range(per_asset):
        for asset in clocks:
            clocks[asset] += rng.uniform(100, 900)
            ts = parse_ts(format_ts(clocks[asset] - rng.uniform(0, jitter_ms)))
            signals = {"x": rng.gauss(1000, 3), "y": rng.uniform(-1, 1) * 1e-3}
            if rng.random() < 0.1:
                del signals["y"]
            records.append(
                Record(
                    asset,
                    DIRECT,
                    step,
                    Telemetry(asset, ts, signals, step // 7),
                    0.0,
                    (asset, step),
                )
            )
    return records


@pytest.mark.parametrize(
    "spec",
    [
        build_windows("tumbling", 5, None, 1),
        build_windows("hopping", 6, 2, 0.5),
        build_windows("cycle", 1, None, 0.5),
    ],
    ids=["tumbling", "hopping", "cycle"],
)
def test_every_emission_matches_offline_numpy(spec: Windows) -> None:
    records = simulated(assets=3, per_asset=120, seed=7, jitter_ms=1500)
    emitted, rejected, _ = run(FeatureExtractor.single(spec), records, [50, 51, 200])
    expected, late = offline_features(spec, records)
    assert sorted(ref for ref, _ in rejected) == sorted(late)
    got = {}
    for value in emitted:
        record = json.loads(value)
        got[(record["asset_id"], record["window"]["end"])] = record
    assert set(got) == set(expected)
    for key, record in got.items():
        want = expected[key]
        assert record["window"] == want["window"]
        assert set(record["features"]) == set(want["features"])
        for name, value in record["features"].items():
            assert value == pytest.approx(want["features"][name], rel=1e-9, abs=1e-9), name


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 360), max_size=6), st.sampled_from(["tumbling", "hopping", "cycle"]))
def test_batching_never_changes_a_byte(cuts: list[int], kind: str) -> None:
    spec = build_windows(kind, 6, 2, 0.5)
    records = simulated(assets=3, per_asset=120, seed=3, jitter_ms=800)
    whole_emitted, whole_rejected, whole_states = run(FeatureExtractor.single(spec), records, [])
    emitted, rejected, states = run(FeatureExtractor.single(spec), records, cuts)
    assert sorted(emitted) == sorted(whole_emitted)  # per asset the order is the same too
    assert sorted(rejected) == sorted(whole_rejected)
    assert states == whole_states


def test_state_round_trips_through_bytes() -> None:
    extractor = FeatureExtractor.single(build_windows("tumbling", 10, None, 5))
    result = extractor.process({"A": make_records("A", [(T0, {"a": 1.0, "é": 2.0}, None)])}, {})
    state = result.states["A"]
    again = AssetState.from_bytes(state.to_bytes())
    assert again.to_bytes() == state.to_bytes()
    assert np.array_equal(
        next(iter(again.panes.values())).acc, next(iter(state.panes.values())).acc
    )
    with pytest.raises(ValueError):
        AssetState.from_bytes(b"XX" + state.to_bytes()[2:])


def classed() -> FeatureExtractor:
    """Engines on cycle windows, pumps on tumbling 10 s windows with bare vibration names."""
    profiles = {
        "turbofan": Profile.of(build_windows("cycle", 1, None, 0), asset_class="turbofan"),
        "rotating": Profile.of(
            build_windows("tumbling", 10, None, 0),
            features=["rms", "kurtosis"],
            asset_class="rotating",
            bare_signal="vibration",
        ),
    }

    def classify(record: Record) -> str:
        return "turbofan" if "s2" in record.telemetry.signals else "rotating"

    return FeatureExtractor(profiles, "rotating", classify)


def test_each_asset_is_windowed_by_its_class() -> None:
    engine = make_records("E1", [(T0 + i * 1000, {"s2": float(i)}, i // 2 + 1) for i in range(5)])
    pump = make_records(
        "P1", [(T0 + i * 4000, {"vibration": float(i), "temp": 1.0}, None) for i in range(6)]
    )
    emitted, rejected, stored = run(classed(), engine + pump, [3])
    assert rejected == []
    records = [json.loads(value) for value in emitted]
    by_asset = {a: [r for r in records if r["asset_id"] == a] for a in ("E1", "P1")}
    assert [r["metadata"]["cycle"] for r in by_asset["E1"]] == [1, 2]
    assert {r["metadata"]["asset_class"] for r in by_asset["E1"]} == {"turbofan"}
    assert by_asset["E1"][0]["features"]["s2_count"] == 2
    pump_windows = [r["window"]["start"] for r in by_asset["P1"]]
    assert pump_windows == [format_ts(T0), format_ts(T0 + 10_000)]
    assert all(r["metadata"]["window_kind"] == "tumbling" for r in by_asset["P1"])
    assert set(by_asset["P1"][0]["features"]) == {"rms", "kurtosis", "temp_rms", "temp_kurtosis"}
    assert by_asset["P1"][0]["features"]["rms"] == pytest.approx(np.sqrt((0 + 1 + 4) / 3))
    assert AssetState.from_bytes(stored["E1"]).asset_class == "turbofan"
    assert AssetState.from_bytes(stored["P1"]).asset_class == "rotating"


def test_an_asset_keeps_its_class_while_its_state_lives() -> None:
    """A later record that would classify otherwise is windowed as the state's class."""
    records = make_records("X1", [(T0, {"s2": 1.0}, 1), (T0 + 500, {"vibration": 2.0}, 2)])
    emitted, rejected, stored = run(classed(), records, [1])
    assert rejected == [] and AssetState.from_bytes(stored["X1"]).asset_class == "turbofan"
    assert [json.loads(value)["metadata"]["cycle"] for value in emitted] == [1]


def test_a_state_from_before_classes_follows_the_default_class() -> None:
    state = AssetState(watermark=T0, names=["a"], offsets={DIRECT: 3})
    old = state.to_bytes().replace(b"F2", b"F1", 1)
    old = old[: AssetState._HEADER.size] + old[AssetState._HEADER.size + 2 :]
    decoded = AssetState.from_bytes(old)
    assert (decoded.asset_class, decoded.watermark, decoded.offsets) == ("", T0, {DIRECT: 3})
    assert AssetState.header_of(old) == (T0, "")
    extractor = classed()
    assert extractor.profile_of(decoded) is extractor.profiles["rotating"]
