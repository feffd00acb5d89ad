"""The serving model of a worker: loads, and waits for a load in progress (no broker)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from streamapp.rul.serving.live_model import LiveModel
from streamapp.rul.training.artifacts import active_version
from tests.conftest import ROOT


def test_a_refresh_during_a_load_returns_with_the_model_loaded(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "models", tmp_path / "models")
    live = LiveModel(tmp_path / "models")

    async def two_refreshes() -> None:
        first = asyncio.create_task(live.refresh())
        await asyncio.sleep(0)  # the first is loading now
        await live.refresh()
        assert live.ensemble is not None
        await first

    asyncio.run(two_refreshes())
    assert live.ensemble is not None
    assert live.ensemble.version == active_version(tmp_path / "models")


def test_no_active_model_leaves_nothing_serving(tmp_path: Path) -> None:
    live = LiveModel(tmp_path)
    asyncio.run(live.refresh())
    assert live.ensemble is None
