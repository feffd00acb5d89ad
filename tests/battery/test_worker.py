"""The battery agent in real worker processes on the real broker: what it publishes
equals the offline tracker's run, through SIGKILLs and rebalances, and from Tesla
fleet-telemetry too."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict

import pytest

from streamapp.archive.compaction import compact
from streamapp.battery.evaluate import track
from streamapp.battery.rules import BatteryRules
from streamapp.runtime.clients import consume, produce_lines
from streamapp.sim import ev
from tests.conftest import settings_from_env
from tests.support.ops import (
    compressed_dataset,
    send_through_sigkills,
    temp_complete,
    wait_for,
)

pytestmark = pytest.mark.integration

Expected = dict[tuple[str, str], bytes]


def offline(fleet: ev.EvFleet) -> tuple[Expected, Expected]:
    """Each session (by VIN and start) and week (by VIN and week) the tracker publishes."""
    run, _ = track(fleet, BatteryRules.load())
    sessions = {
        (s.vin, s.to_json_dict()["start"]): s.to_bytes() for v in run.sessions.values() for s in v
    }
    weeks = {(w.vin, w.to_json_dict()["week"]): w.to_bytes() for v in run.weeks.values() for w in v}
    return sessions, weeks


def read(env: dict[str, str], topic: str, field: str, want: int, timeout: float) -> list[bytes]:
    """Every value of `topic`, once at least `want` distinct (vin, field) are there."""
    settings = settings_from_env(env)
    deadline = time.monotonic() + timeout

    async def collect() -> list[bytes]:
        return [record.value async for record in consume(settings, topic, True, None, 2.0)]

    while True:
        values = asyncio.run(collect())
        distinct = {(json.loads(v)["vin"], json.loads(v)[field]) for v in values}
        if len(distinct) >= want or time.monotonic() > deadline:
            return values
        time.sleep(1.0)


def check(values: list[bytes], field: str, expected: Expected) -> None:
    """The expected records, each once or re-emitted byte-identical."""
    found: dict[tuple[str, str], set[bytes]] = defaultdict(set)
    for value in values:
        record = json.loads(value)
        found[(record["vin"], record[field])].add(value)
    assert set(found) == set(expected)
    for key, variants in found.items():
        assert variants == {expected[key]}, key


def outputs(env: dict[str, str], sessions: Expected, weeks: Expected) -> None:
    settings = settings_from_env(env)
    got = read(env, settings.topic_charge_sessions, "start", len(sessions), 180)
    check(got, "start", sessions)
    check(read(env, settings.topic_battery_health, "week", len(weeks), 60), "week", weeks)


@pytest.mark.slow
def test_sigkilled_workers_publish_what_the_offline_tracker_does(
    isolated_env, start_worker, tmp_path
) -> None:
    fleet = ev.EvFleet(vehicles=8, days=42, seed=11)
    sessions, weeks = offline(fleet)
    assert len(sessions) > 100 and len(weeks) >= 8 * 5
    assert any(json.loads(w)["soh"] is not None for w in weeks.values())
    lines = [value for _, value in ev.messages(fleet)]
    settings = settings_from_env(isolated_env)
    size = len(lines) // 6 + 1
    chunks = [lines[start : start + size] for start in range(0, len(lines), size)]
    send_through_sigkills(
        start_worker,
        isolated_env,
        tmp_path / "victim",
        chunks,
        lambda chunk: asyncio.run(produce_lines(settings, settings.topic_telemetry, chunk)),
    )
    outputs(isolated_env, sessions, weeks)


def test_tesla_fleet_telemetry_gets_the_same_records_and_archives_them(
    isolated_env, start_worker
) -> None:
    """Protojson on `tesla_V`, normalised by the ingest agent, gives what the tracker
    gives on the decoded records; both battery topics land in the compressed layer, a
    Parquet file per VIN and hour (Hive partitions), a row per record."""
    env = {**isolated_env, "BUFFER_FLUSH_INTERVAL": "1", "COMPACTION_GRACE": "0"}
    fleet = ev.EvFleet(vehicles=3, days=35, seed=12, protocol="tesla")
    sessions, weeks = offline(fleet)
    assert sessions and weeks
    settings = settings_from_env(env)
    worker = start_worker(env)
    worker.wait_ready()
    lines = [value for _, value in ev.messages(fleet)]
    asyncio.run(produce_lines(settings, settings.topic_tesla, lines))
    outputs(env, sessions, weeks)
    topics = {settings.topic_charge_sessions: sessions, settings.topic_battery_health: weeks}
    for topic, records in topics.items():
        count = len(records)  # one copy of each: no crash in this run
        wait_for(lambda t=topic, n=count: temp_complete(settings, t, n), 60, f"{topic} in temp")
    asyncio.run(compact(settings, list(topics)))
    health = compressed_dataset(settings, settings.topic_battery_health).to_table().to_pylist()
    assert len(health) == len(weeks)
    assert {(row["asset_id"], row["week"]) for row in health} == set(weeks)
    row = next(r for r in health if r["soh"] is not None)
    assert row["soh"] == json.loads(weeks[(row["asset_id"], row["week"])])["soh"]
    assert {"date", "hour", "soh_lower", "nominal_source", "odometer_km"} <= set(row)
    archived = compressed_dataset(settings, settings.topic_charge_sessions).to_table()
    assert archived.num_rows == len(sessions)
    assert {"kind", "capacity_kwh", "usable", "soc_start"} <= set(archived.column_names)
