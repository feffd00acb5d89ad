"""The feature agent's batch logic, through a checkpoint with recording effects (no broker).

Each batch is handled and committed as `run_batches` does it; the log of effects shows
what was sent, written, deleted and acked, in order.
"""

from __future__ import annotations

import asyncio
import json

from prometheus_client import REGISTRY

from streamapp.features.agent import (
    ORIGIN_OFFSET,
    ORIGIN_PARTITION,
    FeatureAgent,
    extractor_from,
    repartition_topic_name,
)
from streamapp.features.partition import clock_key
from streamapp.runtime.raw import raw_topic
from streamapp.settings import Settings
from tests.support.batches import MemoryTable, RecordingEffects, message, offline_app

T0 = 1_795_320_000_000  # a window boundary
SETTINGS = Settings(
    topic_partitions=1,
    window_size=10.0,
    window_grace=1.0,
    window_idle_timeout=20.0,
    kafka_group_id="features-unit",
)
TELEMETRY = SETTINGS.topic_telemetry
FEATURES = SETTINGS.topic_features
TABLE = "feature-windows"


def telemetry(asset: str, seconds: float, offset: int, *, key: bytes | None = None) -> object:
    """A `telemetry` message of `asset` on partition 0 (its home: one partition)."""
    value = json.dumps({"asset_id": asset, "ts": T0 + seconds * 1000, "signals": {"x": seconds}})
    return message(TELEMETRY, 0, offset, asset.encode() if key is None else key, value.encode())


def agent_and_table() -> tuple[FeatureAgent, MemoryTable]:
    app = offline_app("features-unit")
    table = MemoryTable(TABLE)
    agent = FeatureAgent(
        SETTINGS,
        extractor_from(SETTINGS),
        table,  # type: ignore[arg-type]
        raw_topic(app, FEATURES),
        raw_topic(app, repartition_topic_name(SETTINGS)),
        raw_topic(app, SETTINGS.dlq_topic(TELEMETRY)),
    )
    return agent, table


def run(agent: FeatureAgent, effects: RecordingEffects, batch: list) -> None:
    """Handle and commit one batch, as the batch driver does."""

    async def scenario() -> None:
        checkpoint = effects.checkpoint(batch)
        await agent.handle(batch, checkpoint)
        await checkpoint.commit()

    asyncio.run(scenario())


def counted(outcome: str) -> float:
    found = REGISTRY.get_sample_value("streamapp_feature_records_total", {"outcome": outcome})
    return found or 0.0


def test_a_closed_window_is_delivered_before_the_state_is_written() -> None:
    agent, table = agent_and_table()
    effects = RecordingEffects()
    batch = [telemetry("A", 0, 0), telemetry("A", 5, 1), telemetry("A", 12, 2)]
    run(agent, effects, batch)
    assert [entry[:2] for entry in effects.log] == [
        ("send", FEATURES),
        ("delivered", FEATURES),
        ("write", TABLE),  # the asset's state
        ("write", TABLE),  # then its partition's clock
        ("ack", [(TELEMETRY, 0, offset) for offset in range(3)]),
    ]
    _, _, key, value, _, _ = effects.log[0]
    emitted = json.loads(value)
    assert key == b"A"
    assert emitted["window"]["count"] == 2
    assert set(effects.log[2][2]) == {b"A"}
    assert set(effects.log[3][2]) == {clock_key(0)}
    assert set(table.partitions[0]) == {b"A", clock_key(0)}


def test_a_redelivered_record_is_skipped_by_the_stored_offsets() -> None:
    """After a crash the cache is gone; the table's clock (or, were the clock lost, the
    asset's own state) holds the offsets applied, so nothing is applied or sent twice."""
    for lost_clock in (False, True):
        agent, table = agent_and_table()
        batch = [telemetry("A", 0, 0), telemetry("A", 5, 1), telemetry("A", 12, 2)]
        run(agent, RecordingEffects(), batch)
        stored = table.get(b"A")
        if lost_clock:
            del table.partitions[0][clock_key(0)]
        agent.forget()
        replayed = counted("replayed")
        effects = RecordingEffects()
        run(agent, effects, [telemetry("A", 0, 0), telemetry("A", 5, 1), telemetry("A", 12, 2)])
        assert "send" not in effects.names()
        assert table.get(b"A") == stored
        assert counted("replayed") - replayed == 3
        assert effects.names()[-1] == "ack"


def test_a_misrouted_record_is_forwarded_to_its_home_with_its_origin() -> None:
    agent, table = agent_and_table()
    effects = RecordingEffects()
    forwarded = counted("forwarded")
    run(agent, effects, [telemetry("A", 0, 7, key=b"not-A")])
    assert effects.names() == ["send", "delivered", "ack"]
    _, topic, key, _, partition, headers = effects.log[0]
    assert (topic, key, partition) == (repartition_topic_name(SETTINGS), b"A", 0)
    assert dict(headers)[ORIGIN_OFFSET] == b"7"
    assert dict(headers)[ORIGIN_PARTITION] == b"0"
    assert counted("forwarded") - forwarded == 1
    assert not table.partitions[0]

    # Read back from the repartition topic, it is applied under its origin offset.
    copy = message(repartition_topic_name(SETTINGS), 0, 0, key, effects.log[0][3], headers=headers)
    run(agent, RecordingEffects(), [copy])
    assert set(table.partitions[0]) == {b"A", clock_key(0)}


def test_invalid_telemetry_is_skipped_and_a_late_record_dead_lettered_before_the_state() -> None:
    agent, _ = agent_and_table()
    run(agent, RecordingEffects(), [telemetry("A", 0, 0), telemetry("A", 12, 1)])
    effects = RecordingEffects()
    invalid = counted("invalid")
    garbage = message(TELEMETRY, 0, 2, b"A", b"{not json")
    run(agent, effects, [garbage, telemetry("A", 3, 3)])
    assert counted("invalid") - invalid == 1
    assert [entry[0] for entry in effects.log] == [
        "dead_letter",
        "flush",
        "write",
        "write",
        "ack",
    ]
    letter = effects.log[0][2]
    assert effects.log[0][1] == SETTINGS.dlq_topic(TELEMETRY)
    assert (letter.reason, letter.offset, letter.key) == ("late", 3, b"A")


def test_a_rebalance_before_the_state_write_drops_the_batch() -> None:
    agent, table = agent_and_table()
    effects = RecordingEffects(rebalance_at="delivered")
    run(agent, effects, [telemetry("A", 0, 0), telemetry("A", 12, 1)])
    assert effects.names() == ["send", "delivered", "untrack"]
    assert not table.partitions[0]
    assert agent.state.cache.get("A") is None  # what the batch changed is forgotten


def test_a_silent_asset_expires_after_the_batch_states_are_written() -> None:
    agent, table = agent_and_table()
    run(agent, RecordingEffects(), [telemetry("A", 0, 0)])
    effects = RecordingEffects()
    run(agent, effects, [telemetry("B", 40, 1)])
    assert [entry[:2] for entry in effects.log] == [
        ("write", TABLE),  # B's state
        ("write", TABLE),  # the clock, past A's watermark + idle timeout
        ("send", FEATURES),  # A's last window
        ("delivered", FEATURES),
        ("delete", TABLE),  # then A's state
        ("ack", [(TELEMETRY, 0, 1)]),
    ]
    assert json.loads(effects.log[2][3])["asset_id"] == "A"
    assert effects.log[4][2] == [b"A"]
    assert set(table.partitions[0]) == {b"B", clock_key(0)}
