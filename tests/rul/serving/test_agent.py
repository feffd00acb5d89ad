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

from streamapp.rul.serving.agent import TABLE_NAME, RulAgent
from streamapp.rul.serving.ensemble import EnsemblePrediction
from streamapp.rul.serving.live_model import LiveModel
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


def features(asset: str, cycle: int, offset: int, *, drop: str | None = None) -> object:
    values = {"a": 100.0 - cycle, "b": float(cycle)}
    record = {
        "asset_id": asset,
        "features": {name: v for name, v in values.items() if name != drop},
        "timestamp": T0 + cycle * 1000,
        "window": {"start": T0 + (cycle - 1) * 1000, "end": T0 + cycle * 1000, "count": 1},
        "metadata": {"cycle": cycle},
    }
    return message(FEATURES, 0, offset, asset.encode(), json.dumps(record).encode())


def agent_and_table(tmp_path: Path, ensemble: StandIn | None) -> tuple[RulAgent, MemoryTable]:
    live = LiveModel(tmp_path)
    live.ensemble = ensemble  # type: ignore[assignment]
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
    assert (letters[1].reason, letters[1].offset) == ("missing features: b", 1)
    assert len(effects.entries("send_all")[0][2]) == 1


def test_without_a_model_the_history_is_kept_and_predictions_skipped(tmp_path: Path) -> None:
    agent, table = agent_and_table(tmp_path, None)
    effects = RecordingEffects()
    skipped = counted("streamapp_rul_predictions_skipped_total", reason="no_model")
    run(agent, effects, [features("E1", 1, 0), features("E1", 2, 1)])
    assert effects.names() == ["write", "ack"]
    assert len(AssetSequence.from_bytes(table.get(b"E1")).rows) == 2
    assert counted("streamapp_rul_predictions_skipped_total", reason="no_model") - skipped == 2


def test_a_rebalance_during_inference_writes_and_sends_nothing(tmp_path: Path) -> None:
    effects = RecordingEffects()

    def rebalance() -> None:
        effects.generation_id += 1

    agent, table = agent_and_table(tmp_path, StandIn(during=rebalance))
    run(agent, effects, [features("E1", 1, 0)])
    assert effects.names() == ["untrack"]
    assert table.get(b"E1") is None
    assert not agent.cache.is_pinned("E1")
