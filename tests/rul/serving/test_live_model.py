"""The serving models of a worker, one per class: each loads, waits for a load in
progress, and a bad artifact of one class leaves every class serving (no broker)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from streamapp.assets.classes import AssetClasses
from streamapp.rul.serving.live_model import LiveModel, LiveModels
from streamapp.rul.training.artifacts import ACTIVE, active_version
from tests.conftest import ROOT

SHIPPED = ROOT / "models" / "turbofan"
VERSION = active_version(SHIPPED)
CLASSES = AssetClasses.load()


def two_classes(root: Path) -> LiveModels:
    """The shipped turbofan model, and a copy of it as the `rotating` class's model."""
    shutil.copytree(SHIPPED, root / "turbofan")
    shutil.copytree(SHIPPED, root / "rotating")
    return LiveModels(root, CLASSES)


def test_a_refresh_during_a_load_returns_with_the_model_loaded(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED, tmp_path / "turbofan")
    live = LiveModel(tmp_path / "turbofan", "turbofan")

    async def two_refreshes() -> None:
        first = asyncio.create_task(live.refresh())
        await asyncio.sleep(0)  # the first is loading now
        await live.refresh()
        assert live.ensemble is not None
        await first

    asyncio.run(two_refreshes())
    assert live.ensemble is not None and live.ensemble.version == VERSION


def test_no_active_model_leaves_nothing_serving(tmp_path: Path) -> None:
    live = LiveModels(tmp_path, CLASSES)
    asyncio.run(live.refresh())
    assert live.ensembles() == {name: None for name in CLASSES.classes}


def test_each_class_serves_its_own_active_model(tmp_path: Path) -> None:
    live = two_classes(tmp_path)
    asyncio.run(live.refresh())
    served = live.ensembles()
    assert served["turbofan"] is not None and served["rotating"] is not None
    assert served["turbofan"] is not served["rotating"]
    assert served["ev"] is None and served["generic"] is None


def test_a_tampered_artifact_of_one_class_leaves_every_class_serving(tmp_path: Path) -> None:
    live = two_classes(tmp_path)
    asyncio.run(live.refresh())
    before = live.ensembles()
    # A new version for `rotating` whose weights were altered after the manifest.
    tampered = tmp_path / "rotating" / "tampered-v2"
    shutil.copytree(tmp_path / "rotating" / VERSION, tampered)
    member = next(tampered.glob("*.pt"))
    weights = bytearray(member.read_bytes())
    weights[len(weights) // 2] ^= 0xFF
    member.write_bytes(bytes(weights))
    (tmp_path / "rotating" / ACTIVE).write_text("tampered-v2\n")
    asyncio.run(live.refresh())
    after = live.ensembles()
    assert after["rotating"] is before["rotating"]  # refused: the old version serves on
    assert after["turbofan"] is before["turbofan"]


def test_activating_one_class_changes_nothing_for_another(tmp_path: Path) -> None:
    live = two_classes(tmp_path)
    asyncio.run(live.refresh())
    turbofan, rotating = live["turbofan"].ensemble, live["rotating"].ensemble
    again = tmp_path / "rotating" / "rotating-v2"
    shutil.copytree(tmp_path / "rotating" / VERSION, again)
    (tmp_path / "rotating" / ACTIVE).write_text("rotating-v2\n")
    asyncio.run(live.refresh())
    assert live["rotating"].ensemble is not None and live["rotating"].ensemble is not rotating
    assert live["turbofan"].ensemble is turbofan
