"""`streamapp bench rul`: streaming predictions per second and feature-to-prediction latency.

The real RUL agent (its RocksDB table, batching settings, torch threads and the active
model) runs in an in-process Faust app against a private embedded broker, on a fleet
of simulated assets whose features sit around the model's training means. Two phases:

* throughput: N feature records are produced first, then the agent starts; the rate is
  N over the time from its first prediction to its N-th (the agent's best case: full
  batches, as after a backlog). `predictions_per_cpu_s` divides N by the CPU time the
  process used meanwhile (all threads), a figure that other load on a shared machine
  distorts much less;
* with `ceiling`, the active model's members are replaced by one network of a few
  parameters (same inputs, window, intervals and record path): what is left is the
  agent's own cost, the most predictions/s any model could have on this machine;
* latency: records are then offered at a fixed rate (1,000/s by default) for a while;
  each prediction's Kafka timestamp (set when it is published) minus its feature
  record's timestamp gives p50 and p99. The paced producer shares the bench's event
  loop, so these figures are slightly pessimistic for a worker whose producers run
  elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamapp.bench.harness import (
    bench_app,
    bench_settings,
    broker_label,
    counted,
    create_topics,
    percentiles,
    private_broker,
    wait_until,
)
from streamapp.contracts.codec import format_ts, parse_ts
from streamapp.rul.serving.agent import register
from streamapp.rul.serving.ensemble import Ensemble, MemberInput
from streamapp.rul.training.artifacts import activate, class_folder, load_active, save_ensemble
from streamapp.rul.training.networks import build_model
from streamapp.runtime.clients import consume
from streamapp.settings import Settings
from streamapp.sim.pacing import send_paced

ASSETS = 1000
PARTITIONS = 8
STEP_MS = 1000.0
BASE_MS = 1_795_320_000_000.0
#: The class the bench's records name: its active model runs.
BENCH_CLASS = "turbofan"


def feature_records(
    ensemble: Ensemble, assets: int, first_step: int, steps: int, seed: int
) -> Iterator[tuple[bytes, bytes]]:
    """`extracted-features` records, step by step across the fleet, stamped when generated."""
    rng = np.random.default_rng(seed)
    names = ensemble.feature_names
    base = np.zeros(len(names))
    for name, mean in zip(ensemble.scaler.input_names, ensemble.scaler.mean[0], strict=True):
        base[names.index(name)] = mean
    scale = np.zeros(len(names))
    for name, std in zip(ensemble.scaler.input_names, ensemble.scaler.std[0], strict=True):
        scale[names.index(name)] = std
    for step in range(first_step, first_step + steps):
        noise = rng.normal(size=(assets, len(names))) * scale
        for index in range(assets):
            asset = f"BENCH-{index:04d}"
            end_ms = BASE_MS + step * STEP_MS
            record = {
                "asset_id": asset,
                "sensor_id": "bench",
                "features": dict(zip(names, (base + noise[index]).tolist(), strict=True)),
                "timestamp": format_ts(time.time() * 1000.0),
                "window": {
                    "start": format_ts(end_ms - STEP_MS),
                    "end": format_ts(end_ms),
                    "count": 1,
                },
                "metadata": {"cycle": step, "source": "bench", "asset_class": BENCH_CLASS},
            }
            yield asset.encode(), json.dumps(record, separators=(",", ":")).encode()


def predictions_made() -> float:
    return counted("streamapp_rul_predictions_total")


async def latencies_after(settings: Settings, first_step: int) -> list[float]:
    """Feature record timestamp to the prediction's publish time (its Kafka timestamp),
    for every prediction of a step >= first_step."""
    values = []
    async for record in consume(settings, settings.topic_predictions, True, None, 2.0):
        prediction = json.loads(record.value or b"{}")
        if prediction.get("metadata", {}).get("cycle", 0) >= first_step:
            source_ms = parse_ts(prediction["timestamp"])
            values.append(record.timestamp - float(source_ms))
    return values


async def run_bench(
    settings: Settings, data_dir: Path, records: int, rate: float, seconds: float
) -> dict[str, Any]:
    warm_steps = max(1, records // ASSETS)
    records = warm_steps * ASSETS
    topics = [settings.topic_features, settings.dlq_topic(settings.topic_features)]
    await create_topics(settings, [*topics, settings.topic_predictions], PARTITIONS)
    app = bench_app(settings, data_dir, PARTITIONS)
    live = register(app, settings)
    await live.refresh()
    ensemble = live[BENCH_CLASS].ensemble
    if ensemble is None:
        raise RuntimeError(f"no loadable active model in {live[BENCH_CLASS].folder}")
    await send_paced(
        settings,
        settings.topic_features,
        feature_records(ensemble, ASSETS, 1, warm_steps, seed=1),
        0.0,
        None,
    )
    baseline = predictions_made()
    await app.start()
    try:
        cpu_before = time.process_time()
        first, done = await wait_until(
            predictions_made,
            baseline + records,
            max(120.0, records / 200),
            "throughput phase",
            app,
        )
        cpu_seconds = time.process_time() - cpu_before
        paced_steps = int(np.ceil(rate * seconds / ASSETS)) + 1
        offered = await send_paced(
            settings,
            settings.topic_features,
            feature_records(ensemble, ASSETS, warm_steps + 1, paced_steps, seed=2),
            rate,
            seconds,
        )
        await wait_until(
            predictions_made, baseline + records + offered, 120.0, "latency phase", app
        )
    finally:
        await app.stop()
    latencies = await latencies_after(settings, warm_steps + 1)
    p50, p90, p99 = percentiles(latencies, 50, 90, 99)
    return {
        "model_version": ensemble.version,
        "assets": ASSETS,
        "partitions": PARTITIONS,
        "torch_threads": torch.get_num_threads(),
        "rul_batch_size": settings.rul_batch_size,
        "rul_batch_timeout_ms": settings.rul_batch_timeout_ms,
        "throughput_records": records,
        "predictions_per_s": round(records / (done - first)),
        "predictions_per_cpu_s": round(records / cpu_seconds),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "offered_rate": rate,
        "latency_records": len(latencies),
        "p50_latency_ms": p50,
        "p90_latency_ms": p90,
        "p99_latency_ms": p99,
        "max_latency_ms": round(max(latencies), 1) if latencies else float("nan"),
    }


#: The stand-in member of a ceiling run: a CNN of one filter of width 1 and one hidden unit.
CEILING_MEMBER = {"channels": 1, "layers": 1, "kernel": 1, "hidden": 1, "dropout": 0.0}


def ceiling_models(models_dir: Path, out: Path) -> Path:
    """A models directory whose active turbofan model is the active one with its members
    replaced by one near-free network (`CEILING_MEMBER`): a ceiling run measures the agent."""
    active = load_active(class_folder(models_dir, BENCH_CLASS))
    params = {**CEILING_MEMBER, "window": active.window}
    network = build_model("cnn", len(active.scaler.input_names), params).eval()
    ceiling = Ensemble(
        version="",
        models={"cnn": network},
        weights={"cnn": 1.0},
        scaler=active.scaler,
        window=active.window,
        cap=active.cap,
        conformal=active.conformal,
        member_conformal={"cnn": next(iter(active.member_conformal.values()))},
        hparams={"cnn": params},
        metrics={"subset": "ceiling", "ceiling_of": active.version},
        inputs={"cnn": MemberInput(active.window, active.scaler)},
    )
    folder = class_folder(out, BENCH_CLASS)
    saved = save_ensemble(ceiling, folder)
    activate(folder, saved.name)
    return out


def bench_rul(
    models_dir: Path, records: int, rate: float, seconds: float, ceiling: bool = False
) -> dict[str, Any]:
    """Start a private embedded broker, run both phases, stop the broker."""
    with private_broker("rul") as (broker, state):
        if ceiling:
            models_dir = ceiling_models(models_dir, state / "ceiling-models")
        settings = bench_settings(broker.bootstrap, "rul", models_dir=models_dir)
        return {
            "broker": broker_label(broker),
            "ceiling": ceiling,
            **asyncio.run(run_bench(settings, state / "faust", records, rate, seconds)),
        }
