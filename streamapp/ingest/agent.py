"""Ingestion agents: validate `telemetry`, normalise `tesla_V`, dead-letter the rest."""

from __future__ import annotations

import faust
from faust.types import Message

from streamapp.ingest.deadletter import DeadLetter, send_dead_letter
from streamapp.ingest.metrics import DEAD_LETTERS, MESSAGES, NORMALISED, reason_kind
from streamapp.ingest.tesla import decode_tesla
from streamapp.ingest.validation import Invalid, validate_telemetry
from streamapp.settings import Settings

BATCH = 500
BATCH_WITHIN_S = 0.2


def raw_topic(app: faust.App, name: str) -> faust.TopicT:
    """A topic read and written as raw bytes: agents decode, so nothing is lost in a codec."""
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


async def dead_letter(dlq: faust.TopicT, event: faust.EventT, reason: str) -> None:
    """Count and publish one refused event."""
    await send_dead_letter(dlq, refused(event.message, reason))


def refused(message: Message, reason: str) -> DeadLetter:
    """Count one refused message; its dead letter (a batched agent's checkpoint sends it)."""
    DEAD_LETTERS.labels(message.topic, reason_kind(reason)).inc()
    return DeadLetter.from_message(message, reason)


def register(app: faust.App, settings: Settings) -> None:
    telemetry = raw_topic(app, settings.topic_telemetry)
    telemetry_dlq = raw_topic(app, settings.dlq_topic(settings.topic_telemetry))
    tesla = raw_topic(app, settings.topic_tesla)
    tesla_dlq = raw_topic(app, settings.dlq_topic(settings.topic_tesla))
    max_bytes = settings.max_payload_bytes

    @app.agent(telemetry, name="ingest-telemetry")
    async def validate_telemetry_agent(stream: faust.StreamT) -> None:
        """Every invalid `telemetry` message goes to its DLQ; valid ones are counted."""
        async for events in stream.take_events(BATCH, within=BATCH_WITHIN_S):
            valid = 0
            for event in events:
                message = event.message
                result = validate_telemetry(message.value, message.key, max_bytes)
                if isinstance(result, Invalid):
                    await dead_letter(telemetry_dlq, event, result.reason)
                else:
                    valid += 1
            MESSAGES.labels(settings.topic_telemetry, "valid").inc(valid)
            MESSAGES.labels(settings.topic_telemetry, "invalid").inc(len(events) - valid)

    @app.agent(tesla, name="ingest-tesla")
    async def normalise_tesla_agent(stream: faust.StreamT) -> None:
        """Tesla records become `telemetry` keyed by VIN; undecodable ones go to the DLQ."""
        async for events in stream.take_events(BATCH, within=BATCH_WITHIN_S):
            valid = 0
            for event in events:
                result = decode_tesla(event.message.value, max_bytes)
                if isinstance(result, Invalid):
                    await dead_letter(tesla_dlq, event, result.reason)
                    continue
                valid += 1
                await telemetry.send(key=result.asset_id.encode(), value=result.to_bytes())
            NORMALISED.inc(valid)
            MESSAGES.labels(settings.topic_tesla, "valid").inc(valid)
            MESSAGES.labels(settings.topic_tesla, "invalid").inc(len(events) - valid)
