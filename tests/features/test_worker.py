"""Feature agent in real worker processes on the real broker: values, recovery, crashes."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import time
from collections import defaultdict
from types import SimpleNamespace

import pytest

from streamapp.contracts.telemetry import Telemetry, validate_telemetry
from streamapp.features.agent import extractor_from
from streamapp.runtime.clients import consume, produce_lines
from streamapp.sim.fleet import Simulation, messages
from tests.conftest import settings_from_env
from tests.features.offline import offline_features
from tests.support.classes import TURBOFANS
from tests.support.ops import send_through_sigkills

pytestmark = pytest.mark.integration

WINDOW_ENV = {
    "ASSET_CLASSES": str(TURBOFANS),
    "WINDOW_KIND": "tumbling",
    "WINDOW_SIZE": "5",
    "WINDOW_GRACE": "2",
    "FEATURE_BATCH_WITHIN_S": "0.2",
}


def simulated(assets: int, count: int, seed: int = 5) -> list[tuple[bytes, bytes]]:
    return list(itertools.islice(messages(Simulation(assets, seed=seed)), count))


def expected_for(env: dict[str, str], pairs: list[tuple[bytes, bytes]]):
    records = []
    for offset, (key, value) in enumerate(pairs):
        telemetry = validate_telemetry(value, key)
        assert isinstance(telemetry, Telemetry)
        records.append(
            SimpleNamespace(asset_id=telemetry.asset_id, telemetry=telemetry, ref=offset)
        )
    expected, late = offline_features(
        extractor_from(settings_from_env(env)).profiles["turbofan"].windows, records
    )
    assert late == []
    return expected


def send(env: dict[str, str], pairs: list[tuple[bytes, bytes]]) -> None:
    settings = settings_from_env(env)
    asyncio.run(produce_lines(settings, settings.topic_telemetry, [v for _, v in pairs]))


def read_features(env: dict[str, str], want: int, timeout: float = 120.0) -> list[bytes]:
    """Every extracted-features value, once at least `want` distinct windows are there."""
    settings = settings_from_env(env)
    deadline = time.monotonic() + timeout

    async def collect() -> list[bytes]:
        return [
            record.value
            async for record in consume(settings, settings.topic_features, True, None, 2.0)
        ]

    while True:
        values = asyncio.run(collect())
        distinct = {(json.loads(v)["asset_id"], json.loads(v)["window"]["end"]) for v in values}
        if len(distinct) >= want or time.monotonic() > deadline:
            return values
        time.sleep(1.0)


def check(values: list[bytes], expected: dict) -> None:
    """Every expected window emitted, values equal to numpy, duplicates byte-identical."""
    by_window: dict[tuple[str, str], set[bytes]] = defaultdict(set)
    for value in values:
        record = json.loads(value)
        by_window[(record["asset_id"], record["window"]["end"])].add(value)
    assert set(by_window) == set(expected)
    for key, variants in by_window.items():
        assert len(variants) == 1, f"re-emission of {key} differs"
        record = json.loads(next(iter(variants)))
        want = expected[key]
        assert record["window"] == want["window"]
        assert set(record["features"]) == set(want["features"])
        for name, number in record["features"].items():
            assert number == pytest.approx(want["features"][name], rel=1e-9, abs=1e-9), name


def test_worker_emits_what_numpy_computes(isolated_env, start_worker) -> None:
    env = {**isolated_env, **WINDOW_ENV}
    pairs = simulated(assets=12, count=12 * 40)
    expected = expected_for(env, pairs)
    worker = start_worker(env)
    worker.wait_ready()
    send(env, pairs)
    check(read_features(env, len(expected)), expected)


def test_misrouted_records_are_repartitioned_across_a_rebalance(isolated_env, start_worker) -> None:
    """Every record under one gateway key: most assets live on another partition, half
    of them on partitions >= 4, and a second worker joins mid-stream."""
    env = {**isolated_env, **WINDOW_ENV}
    pairs = simulated(assets=12, count=12 * 40, seed=3)
    expected = expected_for(env, pairs)
    settings = settings_from_env(env)
    lines = [value for _, value in pairs]
    first = start_worker(env, name="first")
    first.wait_ready()
    asyncio.run(produce_lines(settings, settings.topic_telemetry, lines[:240], key="gateway-7"))
    second = start_worker(env, name="second")
    second.wait_ready()
    asyncio.run(produce_lines(settings, settings.topic_telemetry, lines[240:], key="gateway-7"))
    check(read_features(env, len(expected)), expected)
    assert first.alive() and second.alive()


@pytest.mark.tansu
def test_state_recovers_from_the_changelog_alone(isolated_env, start_worker) -> None:
    env = {**isolated_env, **WINDOW_ENV}
    pairs = simulated(assets=8, count=8 * 60, seed=9)
    expected = expected_for(env, pairs)
    cut = 8 * 27 + 3  # mid-window: open windows must survive in the changelog
    worker = start_worker(env, name="first")
    worker.wait_ready()
    send(env, pairs[:cut])
    first = expected_for(env, pairs[:cut])
    read_features(env, len(first))
    time.sleep(3.0)  # past a commit interval
    worker.stop()
    shutil.rmtree(worker.data_dir)
    again = start_worker(env, name="second", data_dir=worker.data_dir)
    again.wait_ready()
    send(env, pairs[cut:])
    check(read_features(env, len(expected)), expected)


@pytest.mark.slow
def test_sigkilled_workers_lose_and_duplicate_nothing(isolated_env, start_worker, tmp_path) -> None:
    env = {**isolated_env, **WINDOW_ENV}
    pairs = simulated(assets=16, count=16 * 90, seed=13)
    expected = expected_for(env, pairs)
    chunks = [pairs[i : i + len(pairs) // 6] for i in range(0, len(pairs), len(pairs) // 6)]
    send_through_sigkills(
        start_worker, env, tmp_path / "victim", chunks, lambda chunk: send(env, chunk)
    )
    check(read_features(env, len(expected), timeout=180), expected)
