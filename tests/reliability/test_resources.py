"""Resource bounds with 100,000 distinct assets: worker RSS and RocksDB size stay bounded.

Every asset reports once per tick, and each tick moves event time one window
further, so every tick closes each asset's previous window: its pane must be deleted
from the table value, and the table's live data must stop growing after the first
ticks. The worker's RSS, the RocksDB directories on disk and the live bytes of the
feature table are printed after every tick.

    pytest -m slow tests/reliability/test_resources.py -s [--resource-assets 100000]
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest
from rocksdict import AccessType, Options, Rdict

from streamapp.features.agent import TABLE_NAME
from streamapp.features.windows import AssetState
from streamapp.sim.fleet import Simulation, messages
from tests.conftest import ROOT, settings_from_env
from tests.reliability.corpus import Message
from tests.reliability.traffic import group_lag, produce

# pending: RSS passes 1 GiB (RocksDB defaults per partition DB, unbounded state cache).
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.pending,
    pytest.mark.timeout(3600),
]

TICKS = 4
GiB = 1024**3


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def dir_bytes(paths: list[Path]) -> int:
    return sum(f.stat().st_size for path in paths for f in path.rglob("*") if f.is_file())


def table_dirs(data_dir: Path, table: str) -> list[Path]:
    return [p for p in data_dir.rglob(f"*{table}*.db") if p.is_dir()]


def feature_states(dirs: list[Path]) -> tuple[int, int, int]:
    """Keys, key+value bytes and the most panes of one asset (read-only: worker stopped)."""
    keys = size = most_panes = 0
    for path in dirs:
        db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            for key, value in db.items():
                keys += 1
                size += len(key) + len(value)
                most_panes = max(most_panes, len(AssetState.from_bytes(value).panes))
        finally:
            db.close()
    return keys, size, most_panes


def test_rss_and_rocksdb_stay_bounded(
    isolated_env: dict[str, str], start_worker, request: pytest.FixtureRequest
) -> None:
    assets = request.config.getoption("--resource-assets")
    env = {
        **isolated_env,
        "WINDOW_KIND": "tumbling",
        "WINDOW_SIZE": "5",
        "WINDOW_GRACE": "0",
        "MODELS_DIR": str(ROOT / "models"),
    }
    settings = settings_from_env(env)
    worker = start_worker(env)
    worker.wait_ready()
    stream = messages(Simulation(assets, seed=3, interval_ms=5000.0))
    consumed = [settings.topic_telemetry, settings.topic_features]
    rows = []
    for tick in range(TICKS):
        batch = [Message("valid", k, v) for k, v in itertools.islice(stream, assets)]
        asyncio.run(produce(settings, settings.topic_telemetry, batch))
        deadline = time.monotonic() + 900
        while lag := asyncio.run(group_lag(settings, consumed)):
            assert time.monotonic() < deadline, f"tick {tick}: {lag} messages not consumed"
            time.sleep(3)
        time.sleep(3)
        rss = rss_bytes(worker.process.pid)
        features_disk = dir_bytes(table_dirs(worker.data_dir, TABLE_NAME))
        all_disk = dir_bytes([worker.data_dir])
        rows.append((tick, rss, features_disk, all_disk))
        print(
            f"\nRESOURCES assets={assets} tick={tick} rss={rss / 2**20:.0f}MiB "
            f"feature_table_disk={features_disk / 2**20:.1f}MiB "
            f"all_tables_disk={all_disk / 2**20:.1f}MiB",
            flush=True,
        )
    worker.stop()
    keys, live, most_panes = feature_states(table_dirs(worker.data_dir, TABLE_NAME))
    print(
        f"RESOURCES feature table live: {keys} keys, {live / 2**20:.1f}MiB, "
        f"at most {most_panes} open pane(s) per asset"
    )
    assert max(rss for _, rss, _, _ in rows) < GiB
    assert keys == assets
    assert most_panes == 1, "closed windows must be deleted from the asset state"
