"""The ingest agents' batch logic, through a checkpoint with recording effects (no broker).

Each batch is handled and committed as `run_batches` does it; the log of effects shows
what was sent and dead-lettered, and that the acks come after the brokers hold it all.
"""

from __future__ import annotations

import asyncio
import json

from prometheus_client import REGISTRY

from streamapp.ingest.agent import TelemetryValidator, TeslaNormaliser
from streamapp.runtime.raw import raw_topic
from streamapp.settings import Settings
from tests.contracts.tesla_payloads import VIN, protobuf_payload
from tests.support.batches import RecordingEffects, message, offline_app

SETTINGS = Settings()
TELEMETRY = SETTINGS.topic_telemetry
TESLA = SETTINGS.topic_tesla


def run(agent: TelemetryValidator | TeslaNormaliser, effects: RecordingEffects, batch) -> None:
    """Handle and commit one batch, as the batch driver does."""

    async def scenario() -> None:
        checkpoint = effects.checkpoint(batch)
        await agent.handle(batch, checkpoint)
        await checkpoint.commit()

    asyncio.run(scenario())


def ingested(topic: str, result: str) -> float:
    labels = {"topic": topic, "result": result}
    return REGISTRY.get_sample_value("streamapp_ingest_messages_total", labels) or 0.0


def normalised() -> float:
    return REGISTRY.get_sample_value("streamapp_tesla_normalised_total") or 0.0


def telemetry(offset: int, value: bytes) -> object:
    return message(TELEMETRY, 0, offset, b"ENGINE-0001", value)


VALID = json.dumps({"asset_id": "ENGINE-0001", "ts": 1_795_327_200_000, "signals": {"s2": 1}})


def validator() -> TelemetryValidator:
    app = offline_app("ingest-unit")
    return TelemetryValidator(SETTINGS, raw_topic(app, SETTINGS.dlq_topic(TELEMETRY)))


def normaliser() -> TeslaNormaliser:
    app = offline_app("ingest-unit")
    return TeslaNormaliser(
        SETTINGS, raw_topic(app, TELEMETRY), raw_topic(app, SETTINGS.dlq_topic(TESLA))
    )


def test_invalid_telemetry_is_dead_lettered_before_the_batch_is_acked() -> None:
    valid, invalid = ingested(TELEMETRY, "valid"), ingested(TELEMETRY, "invalid")
    effects = RecordingEffects()
    batch = [
        telemetry(0, VALID.encode()),
        telemetry(1, b'{"asset_id": "ENGINE-0001", "signals": '),
        telemetry(2, VALID.encode()),
    ]
    run(validator(), effects, batch)
    assert effects.names() == ["dead_letter", "flush", "ack"]
    _, topic, letter = effects.log[0]
    assert topic == SETTINGS.dlq_topic(TELEMETRY)
    assert (letter.topic, letter.partition, letter.offset) == (TELEMETRY, 0, 1)
    assert (letter.key, letter.value) == (b"ENGINE-0001", batch[1].value)
    assert letter.reason
    assert effects.log[-1][1] == [(TELEMETRY, 0, offset) for offset in range(3)]
    assert ingested(TELEMETRY, "valid") - valid == 2
    assert ingested(TELEMETRY, "invalid") - invalid == 1


def test_a_valid_batch_sends_nothing_and_is_acked() -> None:
    effects = RecordingEffects()
    run(validator(), effects, [telemetry(offset, VALID.encode()) for offset in range(3)])
    assert effects.names() == ["ack"]


def test_tesla_records_are_sent_as_telemetry_and_acked_after_delivery() -> None:
    before, invalid = normalised(), ingested(TESLA, "invalid")
    effects = RecordingEffects()
    batch = [
        message(TESLA, 2, 10, VIN.encode(), protobuf_payload()),
        message(TESLA, 2, 11, VIN.encode(), b"\x00\x01garbage"),
    ]
    run(normaliser(), effects, batch)
    assert effects.names() == ["send", "dead_letter", "delivered", "flush", "ack"]
    _, topic, key, value, partition, headers = effects.log[0]
    assert (topic, key, partition, headers) == (TELEMETRY, VIN.encode(), None, None)
    record = json.loads(value)
    assert record["asset_id"] == VIN
    assert record["signals"]["VehicleSpeed"] == 55.0
    assert record["metadata"]["source_topic"] == TESLA
    _, dlq, letter = effects.log[1]
    assert dlq == SETTINGS.dlq_topic(TESLA)
    assert (letter.topic, letter.partition, letter.offset) == (TESLA, 2, 11)
    assert letter.value == b"\x00\x01garbage"
    assert effects.log[-1][1] == [(TESLA, 2, 10), (TESLA, 2, 11)]
    assert normalised() - before == 1
    assert ingested(TESLA, "invalid") - invalid == 1


def test_a_rebalance_before_the_acks_leaves_the_batch_unacked() -> None:
    """The sends are out (a replay sends the same bytes again); the batch comes again."""
    effects = RecordingEffects(rebalance_at="delivered")
    run(normaliser(), effects, [message(TESLA, 0, 0, VIN.encode(), protobuf_payload())])
    assert effects.names() == ["send", "delivered", "untrack"]


def test_a_failed_dead_letter_acks_nothing() -> None:
    effects = RecordingEffects(fail_at="dead_letter")
    agent = validator()
    batch = [telemetry(0, b"{not json")]

    async def scenario() -> None:
        checkpoint = effects.checkpoint(batch)
        try:
            await agent.handle(batch, checkpoint)
        except RuntimeError:
            return
        raise AssertionError("the dead letter's failure was swallowed")

    asyncio.run(scenario())
    assert "ack" not in effects.names()
