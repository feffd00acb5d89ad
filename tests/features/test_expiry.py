"""Silent assets expire: their last windows are emitted and their state is deleted from the
table, and a late record of a forgotten asset is still dead-lettered (no broker).

The harness below does per batch what the agent does per partition: advance the
partition clock over every record, skip records its offsets cover, offer every stored
state for expiry, write the new states, then the clock, then delete the expired assets.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamapp.contracts.codec import format_ts, parse_ts
from streamapp.contracts.telemetry import Telemetry
from streamapp.features.partition import ExpiryIndex, PartitionClock, clock_key
from streamapp.features.windows import (
    DIRECT,
    LATE,
    AssetState,
    FeatureExtractor,
    Profile,
    Record,
    build_windows,
)
from tests.features.offline import offline_features

T0 = 1_795_320_000_000.0
TUMBLING = build_windows("tumbling", 10, None, 2, idle_s=30)


@dataclass
class Partition:
    """One partition's table (asset states and clock) and everything it published."""

    stored: dict[str, bytes] = field(default_factory=dict)
    clock: PartitionClock = field(default_factory=PartitionClock)
    emitted: list[bytes] = field(default_factory=list)
    rejected: list[object] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)

    def batch(
        self, extractor: FeatureExtractor, records: list[Record], lost: tuple[str, ...] = ()
    ) -> None:
        """Apply one batch; `lost` names the writes a crash loses ("clock", "deletes")."""
        clock = self.clock.copy()
        by_asset: dict[str, list[Record]] = {}
        for record in records:
            done = self.clock.offsets.get(record.source, -1)
            clock.advance(record.telemetry.ts_ms, record.source, record.offset)
            if record.offset > done:
                by_asset.setdefault(record.asset_id, []).append(
                    replace(record, stream_ms=clock.stream_ms)
                )
        states = {asset: AssetState.from_bytes(value) for asset, value in self.stored.items()}
        ends = {asset: clock.stream_ms for asset in {*states, *by_asset}}
        result = extractor.process(by_asset, states, ends)
        self.emitted += [emission.value for emission in result.emissions]
        self.rejected += [ref for ref, reason in result.rejected if reason == LATE]
        for asset, state in result.states.items():
            self.stored[asset] = state.to_bytes()
        if "clock" in lost:
            return
        self.clock = clock
        if "deletes" in lost:
            return
        for asset in result.expired:
            self.stored.pop(asset, None)
        self.expired += result.expired


def records_of(points: list[tuple[str, float, float]]) -> list[Record]:
    """(asset, seconds after T0, value) in partition order; offsets count per partition."""
    return [
        Record(asset, DIRECT, offset, Telemetry(asset, T0 + s * 1000, {"x": x}, None), 0.0, offset)
        for offset, (asset, s, x) in enumerate(points)
    ]


def windows(emitted: list[bytes]) -> list[tuple[str, str, int]]:
    return [
        (r["asset_id"], r["window"]["end"], r["window"]["count"]) for r in map(json.loads, emitted)
    ]


def test_a_silent_asset_expires_its_windows_are_emitted_and_its_state_deleted() -> None:
    extractor = FeatureExtractor.single(TUMBLING)
    quiet = [("quiet", s, float(s)) for s in range(16)]  # windows [0,10) and [10,20)
    clock = [("clock", s, 1.0) for s in range(40, 52)]  # moves the partition clock only
    partition = Partition()
    partition.batch(extractor, records_of(quiet))
    assert windows(partition.emitted) == [("quiet", format_ts(T0 + 10_000), 10)]
    assert set(partition.stored) == {"quiet"}

    partition.batch(extractor, records_of(quiet + clock)[16:])
    # The clock reached 51 s: "quiet" (watermark 15 s, idle 30 s) expired at 45 s.
    assert windows(partition.emitted)[1:] == [("quiet", format_ts(T0 + 20_000), 6)]
    assert partition.expired == ["quiet"]
    assert set(partition.stored) == {"clock"}
    last = json.loads(partition.emitted[1])
    assert last["features"]["x_mean"] == pytest.approx(12.5)
    assert last["features"]["x_count"] == 6


def test_late_records_of_a_forgotten_asset_are_still_dead_lettered() -> None:
    extractor = FeatureExtractor.single(TUMBLING)
    points = [("quiet", s, 1.0) for s in range(16)] + [("clock", s, 1.0) for s in range(40, 52)]
    points += [
        ("quiet", 12, 99.0),  # in [10,20): emitted when "quiet" expired
        ("quiet", 21, 99.0),  # [20,30) starts before the horizon (51 - 30 = 21): late too
        ("quiet", 39, 5.0),  # [30,40) starts after it: a new life
    ]
    records = records_of(points)
    partition = Partition()
    partition.batch(extractor, records[:28])
    assert "quiet" not in partition.stored
    partition.batch(extractor, records[28:])
    assert partition.rejected == [28, 29]
    assert [end for asset, end, _ in windows(partition.emitted) if asset == "quiet"] == [
        format_ts(T0 + 10_000),
        format_ts(T0 + 20_000),
    ]
    state = AssetState.from_bytes(partition.stored["quiet"])
    assert list(state.panes) == [T0 + 30_000] and state.watermark == T0 + 39_000

    # Redelivered (a crash before the commit): the partition clock's offsets skip them,
    # though the asset's own offsets went with its deleted state.
    before = (list(partition.emitted), list(partition.rejected))
    partition.batch(extractor, records[20:])
    assert (partition.emitted, partition.rejected) == before


def test_an_asset_back_after_expiry_starts_afresh_whatever_the_batching() -> None:
    """An engine silent past the idle timeout restarts at cycle 1 (a rebuilt engine under
    the same id): its old cycles are all emitted and the new ones are not late, whether
    it expired at the end of an earlier batch or just before its record in the same one."""
    spec = SPECS["cycle"]
    points = [("E", s, 1, s) for s in range(4)]  # cycles 0..3 at 0..3 s
    points += [("K", s, 1, s) for s in range(4, 12)]  # the clock reaches 3 + 6 = 9 s at 9 s
    points += [("E", 12 + s, 2, s) for s in range(3)]  # back at cycle 0 after its expiry
    points += [("K", 20, 1, 20)]  # and past 14 + 6 s: E expires again, cycle 2 goes out
    records = [
        Record(a, DIRECT, o, Telemetry(a, T0 + s * 1000, {"x": x}, c), 0.0, o)
        for o, (a, s, x, c) in enumerate(points)
    ]
    outcomes = []
    for cuts in ([], [8], [10], [12, 13]):
        partition = Partition()
        for lo, hi in itertools.pairwise([0, *cuts, len(records)]):
            partition.batch(FeatureExtractor.single(spec), records[lo:hi])
        assert partition.rejected == []
        outcomes.append(sorted(partition.emitted))
    assert all(outcome == outcomes[0] for outcome in outcomes)
    cycles = [
        (r["window"]["start"], r["metadata"]["cycle"])
        for r in map(json.loads, outcomes[0])
        if r["asset_id"] == "E"
    ]
    assert sorted(cycles) == sorted(
        [(format_ts(T0 + s * 1000), s) for s in range(4)]
        + [(format_ts(T0 + (12 + s) * 1000), s) for s in range(3)]
    )


def simulated(seed: int) -> list[Record]:
    """A partition where assets report, go silent, come back, and one lags far behind."""
    rng = random.Random(seed)
    points = []
    for step in range(160):
        for i in range(5):
            silent = (step // 40 + i) % 3 == 0  # each asset silent 40 of every 120 steps
            if not silent and rng.random() < 0.8:
                jitter = rng.uniform(0, 1.5)
                points.append((f"A{i}", step - jitter, rng.gauss(100, 3)))
        if step % 25 == 0:
            points.append(("laggard", step - 45 + rng.uniform(0, 2), 1.0))
    records = []
    for offset, (asset, s, x) in enumerate(points):
        ts = parse_ts(format_ts(T0 + s * 1000))
        telemetry = Telemetry(asset, ts, {"x": x}, int(s // 4))
        records.append(Record(asset, DIRECT, offset, telemetry, 0.0, offset))
    return records


SPECS = {
    "tumbling": build_windows("tumbling", 5, None, 1, idle_s=12),
    "hopping": build_windows("hopping", 6, 2, 0.5, idle_s=12),
    "cycle": build_windows("cycle", 1, None, 0.5, idle_s=6),
}


@pytest.mark.parametrize("kind", list(SPECS))
def test_expiry_matches_offline_numpy(kind: str) -> None:
    records = simulated(seed=4)
    partition = Partition()
    for lo, hi in itertools.pairwise([0, 100, 101, 400, len(records)]):
        partition.batch(FeatureExtractor.single(SPECS[kind]), records[lo:hi])
    expected, late = offline_features(SPECS[kind], records)
    assert partition.expired, "the scenario must expire assets"
    assert late and sorted(partition.rejected) == sorted(late)
    got = {}
    for value in partition.emitted:
        record = json.loads(value)
        key = (record["asset_id"], record["window"]["end"])
        assert key not in got, f"{key} emitted twice"
        got[key] = record
    assert set(got) == set(expected)
    for key, record in got.items():
        assert record["window"] == expected[key]["window"]
        for name, value in record["features"].items():
            assert value == pytest.approx(expected[key]["features"][name], rel=1e-9, abs=1e-9)


@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.integers(1, 700), max_size=6, unique=True),
    st.sampled_from(list(SPECS)),
    st.sampled_from([(), ("clock",), ("deletes",)]),
)
def test_batching_and_crashes_never_change_a_byte(
    cuts: list[int], kind: str, lost: tuple[str, ...]
) -> None:
    """Cut anywhere; a crash after a batch's state writes replays it (as the agent's
    batch comes again from the committed offsets): same windows, same bytes."""
    records = simulated(seed=9)
    whole = Partition()
    whole.batch(FeatureExtractor.single(SPECS[kind]), records)
    partition = Partition()
    bounds = [0, *sorted(c for c in cuts if c < len(records)), len(records)]
    for lo, hi in itertools.pairwise(bounds):
        partition.batch(FeatureExtractor.single(SPECS[kind]), records[lo:hi], lost)
        if lost:
            partition.batch(FeatureExtractor.single(SPECS[kind]), records[lo:hi])
    assert sorted(set(partition.emitted)) == sorted(whole.emitted)
    assert len(set(windows(partition.emitted))) == len(whole.emitted)
    assert sorted(set(partition.rejected)) == sorted(whole.rejected)
    assert set(partition.stored) == set(whole.stored)


def test_expiry_index_finds_due_assets_in_order() -> None:
    index = ExpiryIndex(FeatureExtractor.single(TUMBLING))
    for asset, seconds in [("a", 5), ("b", 1), ("c", 50), ("d", 31)]:
        index.set(asset, T0 + seconds * 1000, "")
    assert index.due(T0 + 36_000, 10) == ["b", "a"]
    assert index.due(T0 + 36_000, 1) == ["b"]
    index.set("b", T0 + 20_000, "")  # reported again: moves on
    index.remove("a")
    assert index.due(T0 + 61_000, 10) == ["b", "d"] and len(index) == 3
    stored = {b"x": AssetState(watermark=T0).to_bytes(), clock_key(3): PartitionClock().to_bytes()}
    scanned = ExpiryIndex.scan(FeatureExtractor.single(TUMBLING), stored.items())
    assert scanned.due(T0 + 30_000, 5) == ["x"]


def test_expiry_follows_each_assets_class() -> None:
    """An asset expires by the idle timeout of its own class's windows."""
    short = build_windows("tumbling", 10, None, 0, 20)
    extractor = FeatureExtractor({"short": Profile.of(short), "long": Profile.of(TUMBLING)}, "long")
    index = ExpiryIndex(extractor)
    index.set("s", T0, "short")
    index.set("l", T0, "long")
    index.set("old", T0, "")  # a state written before classes: the default class
    assert index.due(T0 + 20_000, 10) == ["s"]
    assert TUMBLING.expires_at(T0) > T0 + 20_000
    due = index.due(TUMBLING.expires_at(T0), 10)
    assert due[0] == "s" and set(due) == {"s", "l", "old"}


def test_partition_clock() -> None:
    clock = PartitionClock()
    clock.advance(T0, DIRECT, 7)
    clock.advance(T0 - 5, 3, 2)
    clock.advance(T0 - 9, DIRECT, 5)
    assert clock == PartitionClock(T0, {DIRECT: 7, 3: 2})
    assert PartitionClock.from_bytes(clock.to_bytes()) == clock
