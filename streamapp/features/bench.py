"""`streamapp bench features`: windowed features against plain aiokafka, in one process.

Both read the same N simulated engine messages (1,000 assets, one message per asset
per second of event time, 8 partitions) from a private embedded broker started and
stopped here. The ceiling is a plain aiokafka consumer decoding each value as JSON
(the archive bench's `raw_consume`); the feature agent runs in an in-process Faust app
with its RocksDB table and changelog, timed from its first record to the N-th record
applied, with the closed windows' features produced and acknowledged by the broker.
Every asset is one class windowed by the WINDOW_* settings (`assets/uniform.yaml`), so
the figures stay comparable with those from before asset classes.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

from streamapp.assets.classes import UNIFORM
from streamapp.bench.harness import (
    PARTITIONS,
    bench_app,
    bench_settings,
    broker_label,
    counted,
    create_topics,
    private_broker,
    produce,
    raw_consume,
    wait_until,
)
from streamapp.features.agent import register
from streamapp.settings import Settings
from streamapp.sim.fleet import Simulation, messages

ASSETS = 1000


async def produce_fleet(settings: Settings, count: int) -> None:
    """N simulator messages keyed by asset (default partitioner: each asset's home)."""
    await create_topics(settings, [settings.topic_telemetry, settings.topic_features], PARTITIONS)
    fleet = itertools.islice(messages(Simulation(ASSETS, seed=11)), count)
    await produce(settings, settings.topic_telemetry, ((k, v, None) for k, v in fleet))


def applied_records() -> float:
    return sum(
        counted("streamapp_feature_records_total", outcome=outcome)
        for outcome in ("applied", "rejected")
    )


async def features_consume(settings: Settings, count: int, data_dir: Path) -> dict[str, float]:
    """Run the feature agent in-process until `count` records have been applied."""
    app = bench_app(settings, data_dir, PARTITIONS)
    register(app, settings)
    baseline = applied_records()
    emitted_before = counted("streamapp_feature_windows_emitted_total")
    await app.start()
    try:
        started, finished = await wait_until(
            applied_records, baseline + count, max(180.0, count / 500), "feature records", app
        )
    finally:
        await app.stop()
    if started == finished:
        raise ValueError(
            f"all {count} messages were applied in one batch, so no rate can be measured: "
            f"use several times FEATURE_BATCH_SIZE ({settings.feature_batch_size}) messages"
        )
    return {
        "features_msgs_per_s": count / (finished - started),
        "windows_emitted": counted("streamapp_feature_windows_emitted_total") - emitted_before,
    }


async def run_bench(settings: Settings, count: int, data_dir: Path) -> dict[str, Any]:
    await produce_fleet(settings, count)
    raw = await raw_consume(settings, settings.topic_telemetry, count)
    features = await features_consume(settings, count, data_dir)
    return {
        "messages": count,
        "assets": ASSETS,
        "partitions": PARTITIONS,
        "window": f"{settings.window_kind} {settings.window_size:g}s",
        "raw_consume_msgs_per_s": round(raw),
        "features_msgs_per_s": round(features["features_msgs_per_s"]),
        "ratio": round(features["features_msgs_per_s"] / raw, 3),
        "windows_emitted": int(features["windows_emitted"]),
    }


def bench_features(count: int) -> dict[str, Any]:
    """Start a private embedded broker, run the bench, stop the broker."""
    with private_broker("features") as (broker, state):
        settings = bench_settings(broker.bootstrap, "features").model_copy(
            update={"asset_classes": UNIFORM}
        )
        return {
            "broker": broker_label(broker),
            **asyncio.run(run_bench(settings, count, state / "faust")),
        }
