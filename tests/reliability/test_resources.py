"""Resource bounds with 100,000 distinct assets: worker RSS and RocksDB size stay bounded.

Every asset reports once per tick for ACTIVE_TICKS ticks, each tick one window further
in event time, so each tick closes every asset's previous window. Then the assets go
silent while one clock asset per partition keeps event time moving: once a partition's
clock passes an asset's last record + WINDOW_IDLE_TIMEOUT, the asset's last window is
emitted and its state deleted from the table (a changelog tombstone). After every tick
the worker's RSS (peak and current), the feature table's directory on disk, every
table's directory and the assets expired so far are printed; at the end the live
table is read.

    make resources    (pytest -m resources -s [--resource-assets N])
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path

import pytest
from rocksdict import AccessType, Options, Rdict

from streamapp.contracts.codec import format_ts
from streamapp.features.agent import TABLE_NAME
from streamapp.features.partition import is_asset_key
from streamapp.runtime.produce import default_partition
from streamapp.sim.fleet import Simulation, messages
from tests.conftest import ROOT, settings_from_env
from tests.reliability.corpus import Message
from tests.reliability.traffic import group_lag, produce
from tests.support.classes import TURBOFANS

# About 14 minutes at 100,000 assets on this machine: `make resources`, not `make test`.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.resources,
    pytest.mark.timeout(3600),
]

ACTIVE_TICKS = 2
SILENT_TICKS = 3
TICK_S = 5
IDLE_S = 2 * TICK_S  # silent assets expire on the second silent tick
START_MS = 1_795_320_000_000.0
GiB = 1024**3
MiB = 1024**2


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field}")


def dir_bytes(paths: list[Path]) -> int:
    return sum(f.stat().st_size for path in paths for f in path.rglob("*") if f.is_file())


def table_dirs(data_dir: Path, table: str) -> list[Path]:
    return [p for p in data_dir.rglob(f"*{table}*.db") if p.is_dir()]


def live_keys(dirs: list[Path]) -> int:
    """Asset keys in the table (read-only: the worker is stopped)."""
    keys = 0
    for path in dirs:
        db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            # Iterating an Rdict itself indexes it by position, not over its keys.
            keys += sum(1 for key in db.keys() if is_asset_key(key))  # noqa: SIM118
        finally:
            db.close()
    return keys


def metric(worker, name: str) -> float:
    status, body = worker.get("/metrics", timeout=10)
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def clock_assets(partitions: int) -> list[str]:
    """One asset id homed on each partition: they keep every partition's clock moving."""
    homes: dict[int, str] = {}
    for n in itertools.count():
        asset = f"CLOCK-{n}"
        homes.setdefault(default_partition(asset.encode(), partitions), asset)
        if len(homes) == partitions:
            return [homes[p] for p in range(partitions)]
    raise AssertionError("unreachable")


def clock_tick(assets: list[str], tick: int) -> list[Message]:
    ts = format_ts(START_MS + tick * TICK_S * 1000)
    values = [{"asset_id": a, "ts": ts, "signals": {"x": 1.0}} for a in assets]
    return [Message("valid", v["asset_id"].encode(), json.dumps(v).encode()) for v in values]


def test_rss_and_rocksdb_stay_bounded(
    isolated_env: dict[str, str], start_worker, request: pytest.FixtureRequest
) -> None:
    assets = request.config.getoption("--resource-assets")
    env = {
        **isolated_env,
        "ASSET_CLASSES": str(TURBOFANS),
        "WINDOW_KIND": "tumbling",
        "WINDOW_SIZE": str(TICK_S),
        "WINDOW_GRACE": "0",
        "WINDOW_IDLE_TIMEOUT": str(IDLE_S),
        "MODELS_DIR": str(ROOT / "models"),
    }
    settings = settings_from_env(env)
    clocks = clock_assets(settings.topic_partitions)
    worker = start_worker(env)
    worker.wait_ready()
    pid = worker.process.pid
    stream = messages(Simulation(assets, seed=3, start_ms=START_MS, interval_ms=TICK_S * 1000.0))
    consumed = [settings.topic_telemetry, settings.topic_features]
    started = time.monotonic()
    peak = 0
    feature_disk: list[int] = []
    for tick in range(ACTIVE_TICKS + SILENT_TICKS):
        if tick < ACTIVE_TICKS:
            batch = [Message("valid", k, v) for k, v in itertools.islice(stream, assets)]
        else:
            batch = []
        asyncio.run(produce(settings, settings.topic_telemetry, batch + clock_tick(clocks, tick)))
        deadline = time.monotonic() + 900
        while lag := asyncio.run(group_lag(settings, consumed)):
            assert time.monotonic() < deadline, f"tick {tick}: {lag} messages not consumed"
            peak = max(peak, rss_bytes(pid))
            time.sleep(2)
        time.sleep(3)
        peak = max(peak, rss_bytes(pid), rss_bytes(pid, "VmHWM"))
        feature_disk.append(dir_bytes(table_dirs(worker.data_dir, TABLE_NAME)))
        print(
            f"\nRESOURCES assets={assets} tick={tick} "
            f"{'active' if tick < ACTIVE_TICKS else 'silent'} "
            f"rss={rss_bytes(pid) / MiB:.0f}MiB peak_rss={peak / MiB:.0f}MiB "
            f"feature_table_disk={feature_disk[-1] / MiB:.1f}MiB "
            f"all_tables_disk={dir_bytes([worker.data_dir]) / MiB:.1f}MiB "
            f"expired={metric(worker, 'streamapp_feature_assets_expired_total'):.0f} "
            f"windows_emitted={metric(worker, 'streamapp_feature_windows_emitted_total'):.0f} "
            f"wall={time.monotonic() - started:.0f}s",
            flush=True,
        )
    expired = metric(worker, "streamapp_feature_assets_expired_total")
    emitted = metric(worker, "streamapp_feature_windows_emitted_total")
    worker.stop()
    keys = live_keys(table_dirs(worker.data_dir, TABLE_NAME))
    print(
        f"RESOURCES feature table after expiry: {keys} asset keys "
        f"({len(clocks)} clock assets), peak RSS {peak / MiB:.0f}MiB, "
        f"wall {time.monotonic() - started:.0f}s"
    )
    assert peak < GiB
    assert expired >= assets
    assert emitted >= assets * ACTIVE_TICKS  # each tick's window, the last one by expiry
    assert keys == len(clocks), "expired assets must be deleted from the table"
    # Once the silent assets are gone the directory stops growing (compaction may shrink it).
    after_expiry = feature_disk[ACTIVE_TICKS + 1 :]
    assert max(after_expiry) <= after_expiry[0] * 1.05 + MiB
