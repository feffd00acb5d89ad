"""Ingestion agents: validate `telemetry`, normalise `tesla_V`, dead-letter the rest."""

from __future__ import annotations

from typing import Any, cast

import faust

from streamapp.contracts.codec import Invalid
from streamapp.contracts.telemetry import validate_telemetry
from streamapp.contracts.tesla import decode_tesla
from streamapp.ingest.metrics import MESSAGES, NORMALISED
from streamapp.runtime.raw import dead_letter_message, raw_topic
from streamapp.settings import Settings

BATCH = 500
BATCH_WITHIN_S = 0.2


async def dead_letter(dlq: faust.TopicT, event: faust.EventT, reason: str) -> None:
    """Count and publish one refused event."""
    await dead_letter_message(dlq, event.message, reason)


def register(app: faust.App, settings: Settings) -> None:
    telemetry = raw_topic(app, settings.topic_telemetry)
    telemetry_dlq = raw_topic(app, settings.dlq_topic(settings.topic_telemetry))
    tesla = raw_topic(app, settings.topic_tesla)
    tesla_dlq = raw_topic(app, settings.dlq_topic(settings.topic_tesla))
    max_bytes = settings.max_payload_bytes

    @app.agent(telemetry, name="ingest-telemetry")
    async def validate_telemetry_agent(stream: faust.StreamT) -> None:
        """Every invalid `telemetry` message goes to its DLQ; valid ones are counted."""
        async for events in cast(Any, stream).take_events(BATCH, within=BATCH_WITHIN_S):
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
        async for events in cast(Any, stream).take_events(BATCH, within=BATCH_WITHIN_S):
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
