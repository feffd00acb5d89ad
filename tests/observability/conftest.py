"""One worker with traffic through every agent, scraped before and after."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.ops import (
    Families,
    post,
    prediction,
    produce_json,
    produce_raw,
    running_worker,
    scrape,
)
from tests.support.worker import WorkerProcess

API_KEY = "observability-key"
EVENT_SECONDS = 90
# The 14 C-MAPSS sensors the shipped model reads, so feature records reach the RUL agent.
SENSORS = {
    "s2": 642.0, "s3": 1589.0, "s4": 1400.0, "s7": 554.0, "s8": 2388.0, "s9": 9050.0,
    "s11": 47.4, "s12": 522.0, "s13": 2388.0, "s14": 8140.0, "s15": 8.4, "s17": 392.0,
    "s20": 38.9, "s21": 23.3,
}  # fmt: skip


def telemetry(asset: str, second: int) -> dict[str, Any]:
    return {
        "asset_id": asset,
        "ts": f"2026-11-22T07:{second // 60:02d}:{second % 60:02d}.000Z",
        "signals": {name: base + second * 0.01 for name, base in SENSORS.items()},
        "cycle": second,
    }


def tesla_protojson(vin: str) -> bytes:
    return json.dumps(
        {
            "data": [
                {"key": "VehicleSpeed", "value": {"stringValue": "55"}},
                {"key": "Soc", "value": {"doubleValue": 80.5}},
            ],
            "createdAt": "2026-11-22T07:00:00.123Z",
            "vin": vin,
            "isResend": False,
        }
    ).encode()


def send_traffic(worker: WorkerProcess, env: dict[str, str]) -> None:
    """Valid and invalid telemetry, a Tesla record, HTTP ingestion and predictions."""
    records = [
        telemetry(asset, second)
        for second in range(EVENT_SECONDS)
        for asset in ("OBS-ENGINE-1", "OBS-ENGINE-2")
    ]
    produce_json(env, env["TOPIC_TELEMETRY"], records)
    produce_raw(env, env["TOPIC_TELEMETRY"], [b"{broken", b'{"asset_id": ""}'], key="OBS-BAD")
    produce_raw(
        env, env["TOPIC_TESLA"], [tesla_protojson("5YJ3E1EA7KF000001")], key="5YJ3E1EA7KF000001"
    )
    status, _ = post(
        worker.base_url + "/api/v1/telemetry",
        json.dumps([telemetry("OBS-HTTP", 1), telemetry("OBS-HTTP", 2)]).encode(),
        {"X-Api-Key": API_KEY},
    )
    assert status == 202
    produce_json(
        env,
        env["TOPIC_PREDICTIONS"],
        [prediction("OBS-ENGINE-1", 80.0, "2026-11-22T07:00:00Z")],
    )


@pytest.fixture(scope="package")
def scraped(
    kafka_broker: str,
    s3_server: str,
    tmp_path_factory: pytest.TempPathFactory,
    artifacts_dir: Path,
) -> Iterator[tuple[WorkerProcess, dict[str, str], Families]]:
    """(worker, env, exposition before traffic); the worker runs for the whole package."""
    with running_worker(
        kafka_broker,
        s3_server,
        tmp_path_factory.mktemp("metrics-worker"),
        artifacts_dir / "metrics-worker.log",
        API_KEY=API_KEY,
        WINDOW_SIZE="5",
        WINDOW_GRACE="0",
        BUFFER_FLUSH_INTERVAL="1",
    ) as (worker, env):
        before = scrape(worker)
        send_traffic(worker, env)
        yield worker, env, before
