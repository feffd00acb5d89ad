"""The RUL agent's batch logic, through a checkpoint with recording effects (no broker).

Each batch is prepared, finished and committed as `run_batches` does it, with a small
stand-in ensemble (the agent only needs its names, window and `predict`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from prometheus_client import REGISTRY

from streamapp.assets.classes import AssetClasses
from streamapp.rul.serving.agent import TABLE_NAME, RulAgent
from streamapp.rul.serving.ensemble import EnsemblePrediction
from streamapp.rul.serving.live_model import LiveModels
from streamapp.rul.serving.sequences import AssetSequence
from streamapp.rul.training.data import pad_window
from streamapp.runtime.raw import raw_topic
from streamapp.settings import Settings
from tests.support.batches import MemoryTable, RecordingEffects, message, offline_app

SETTINGS = Settings(topic_partitions=1, kafka_group_id="rul-unit")
FEATURES = SETTINGS.topic_features
PREDICTIONS = SETTINGS.topic_predictions
T0 = 1_795_320_000_000


@dataclass
class StandIn:
    """An ensemble predicting the last row's first feature; `during` runs in `predict`."""

    version: str = "unit-1"
    window: int = 3
    feature_names: list[str] = field(default_factory=lambda: ["a", "b"])
    during: Callable[[], None] = lambda: None

    def window_from_rows(self, rows: np.ndarray) -> np.ndarray:
        return pad_window(np.asarray(rows[-self.window :], dtype=np.float64), self.window)

    def predict(
        self, batch: np.ndarray, level: float | None, pool: Executor | None
    ) -> EnsemblePrediction:
        self.during()
        rul = batch[:, -1, 0].copy()
        zeros = np.zeros_like(rul)
        return EnsemblePrediction(rul, rul, rul, 0.9, zeros, zeros, {"standin": rul})


def features(
    asset: str,
    cycle: int,
    offset: int,
    *,
    drop: str | None = None,
    asset_class: str = "generic",
    sensor: str | None = None,
    key: bytes | str | None = "asset",
) -> object:
    values = {"a": 100.0 - cycle, "b": float(cycle)}
    record = {
        "asset_id": asset,
        "sensor_id": sensor,
        "features": {name: v for name, v in values.items() if name != drop},
        "timestamp": T0 + cycle * 1000,
        "window": {"start": T0 + (cycle - 1) * 1000, "end": T0 + cycle * 1000, "count": 1},
        "metadata": {"cycle": cycle, "asset_class": asset_class},
    }
    kafka_key = asset.encode() if key == "asset" else key
    return message(FEATURES, 0, offset, kafka_key, json.dumps(record).encode())


def agent_and_table(
    tmp_path: Path, ensemble: StandIn | None, **others: StandIn
) -> tuple[RulAgent, MemoryTable]:
    """The agent with `ensemble` serving class `generic`, and `others` by class name."""
    live = LiveModels(tmp_path, AssetClasses.load())
    live["generic"].ensemble = ensemble  # type: ignore[assignment]
    for name, other in others.items():
        live[name].ensemble = other  # type: ignore[assignment]
    table = MemoryTable(TABLE_NAME)
    app = offline_app("rul-unit")
    dlq = raw_topic(app, SETTINGS.dlq_topic(FEATURES))
    return RulAgent(SETTINGS, live, table, dlq), table  # type: ignore[arg-type]


def run(agent: RulAgent, effects: RecordingEffects, batch: list) -> None:
    """Prepare, finish and commit one batch, as the batch driver does."""

    async def scenario() -> None:
        checkpoint = effects.checkpoint(batch)
        finish = await agent.handle(batch, checkpoint)
        await finish()
        await checkpoint.commit()

    asyncio.run(scenario())


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_predictions_are_stored_with_the_state_and_sent_after_it(tmp_path: Path) -> None:
    agent, table = agent_and_table(tmp_path, StandIn())
    effects = RecordingEffects()
    before = counted("streamapp_rul_predictions_total")
    run(agent, effects, [features("E1", 1, 0), features("E1", 2, 1)])
    assert effects.names() == ["write", "send_all", "ack"]
    _, topic, records = effects.log[1]
    assert topic == PREDICTIONS
    assert [key for key, _, _ in records] == [b"E1", b"E1"]
    assert [json.loads(value)["rul_prediction"] for _, value, _ in records] == [99.0, 98.0]
    stored = AssetSequence.from_bytes(table.get(b"E1"))
    assert stored.emitted == [(0, records[0][1]), (1, records[1][1])]
    assert stored.last_offset == 1
    assert counted("streamapp_rul_predictions_total") - before == 2


def test_a_replayed_record_resends_the_stored_bytes(tmp_path: Path) -> None:
    agent, _ = agent_and_table(tmp_path, StandIn())
    first = RecordingEffects()
    run(agent, first, [features("E1", 1, 0), features("E1", 2, 1)])
    agent.forget()  # a restart: the table is the truth
    replay = RecordingEffects()
    run(agent, replay, [features("E1", 2, 1)])
    assert replay.names() == ["send_all", "ack"]  # no state to write: nothing was applied
    assert replay.log[0][2] == [first.log[1][2][1]]  # byte for byte, latency included


def test_invalid_or_incomplete_records_are_dead_lettered_before_the_state(
    tmp_path: Path,
) -> None:
    agent, _ = agent_and_table(tmp_path, StandIn())
    effects = RecordingEffects()
    garbage = message(FEATURES, 0, 0, b"E1", b"[1, 2")
    run(agent, effects, [garbage, features("E1", 1, 1, drop="b"), features("E1", 2, 2)])
    assert effects.names() == ["dead_letter", "dead_letter", "flush", "write", "send_all", "ack"]
    letters = [entry[2] for entry in effects.entries("dead_letter")]
    assert [entry[1] for entry in effects.entries("dead_letter")] == [
        SETTINGS.dlq_topic(FEATURES)
    ] * 2
    assert letters[0].reason.startswith("invalid JSON")
    reason = "missing features: b (the generic model's inputs)"
    assert (letters[1].reason, letters[1].offset) == (reason, 1)
    assert len(effects.entries("send_all")[0][2]) == 1


def test_without_a_model_the_history_is_kept_and_predictions_skipped(tmp_path: Path) -> None:
    agent, table = agent_and_table(tmp_path, None)
    effects = RecordingEffects()
    labels = {"reason": "no_model", "asset_class": "generic"}
    skipped = counted("streamapp_rul_predictions_skipped_total", **labels)
    run(agent, effects, [features("E1", 1, 0), features("E1", 2, 1)])
    assert effects.names() == ["write", "ack"]
    assert len(AssetSequence.from_bytes(table.get(b"E1")).rows) == 2
    assert counted("streamapp_rul_predictions_skipped_total", **labels) - skipped == 2


def test_a_rebalance_during_inference_writes_and_sends_nothing(tmp_path: Path) -> None:
    effects = RecordingEffects()

    def rebalance() -> None:
        effects.generation_id += 1

    agent, table = agent_and_table(tmp_path, StandIn(during=rebalance))
    run(agent, effects, [features("E1", 1, 0)])
    assert effects.names() == ["untrack"]
    assert table.get(b"E1") is None
    assert not agent.cache.is_pinned("E1")


def test_each_class_is_served_by_its_own_model(tmp_path: Path) -> None:
    """Two classes, two models; a class without one keeps its history, no dead letter."""
    rotating = StandIn(version="rot-1", feature_names=["b"])
    agent, table = agent_and_table(tmp_path, None, turbofan=StandIn(), rotating=rotating)
    effects = RecordingEffects()
    labels = {"reason": "no_model", "asset_class": "ev"}
    skipped = counted("streamapp_rul_predictions_skipped_total", **labels)
    batch = [
        features("E1", 1, 0, asset_class="turbofan"),
        features("P1", 1, 1, asset_class="rotating", drop="a"),
        features("V1", 1, 2, asset_class="ev"),
    ]
    run(agent, effects, batch)
    assert "dead_letter" not in effects.names()
    sent = [json.loads(value) for _, value, _ in effects.entries("send_all")[0][2]]
    served = {p["asset_id"]: (p["asset_class"], p["model_version"]) for p in sent}
    assert served == {"E1": ("turbofan", "unit-1"), "P1": ("rotating", "rot-1")}
    assert [p["rul_prediction"] for p in sent if p["asset_id"] == "P1"] == [1.0]
    assert counted("streamapp_rul_predictions_skipped_total", **labels) - skipped == 1
    assert len(AssetSequence.from_bytes(table.get(b"V1")).rows) == 1


def test_records_of_several_sensors_each_have_their_own_sequence(tmp_path: Path) -> None:
    agent, table = agent_and_table(tmp_path, StandIn())
    effects = RecordingEffects()
    batch = [
        features("M1", 1, 0, sensor="bearing-1"),
        features("M1", 1, 1, sensor="bearing-2"),  # the same window end, another sensor
        features("M1", 2, 2, sensor="bearing-1"),
    ]
    run(agent, effects, batch)
    sent = [json.loads(value) for _, value, _ in effects.entries("send_all")[0][2]]
    assert [(p["sensor_id"], p["metadata"]["history"]) for p in sent] == [
        ("bearing-1", 1),
        ("bearing-2", 1),
        ("bearing-1", 2),
    ]
    assert len(AssetSequence.from_bytes(table.get(b"M1\x1fbearing-1")).rows) == 2
    assert len(AssetSequence.from_bytes(table.get(b"M1\x1fbearing-2")).rows) == 1


def test_a_record_not_keyed_by_its_asset_is_dead_lettered(tmp_path: Path) -> None:
    agent, table = agent_and_table(tmp_path, StandIn())
    effects = RecordingEffects()
    run(agent, effects, [features("E1", 1, 0, key=None), features("E1", 2, 1, key=b"other")])
    letters = [entry[2] for entry in effects.entries("dead_letter")]
    assert [letter.offset for letter in letters] == [0, 1]
    assert letters[0].reason.startswith("no key: extracted-features records must be keyed")
    assert letters[1].reason.startswith("key b'other'")
    assert table.get(b"E1") is None
