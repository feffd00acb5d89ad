"""Ingestion agents: validate `telemetry`, normalise `tesla_V`, dead-letter the rest.

Each agent's topic is a batch route of `streamapp.runtime.drain`, as the archive's, the
feature and RUL agents' are: the fetch loop hands it lists of raw messages (every route of
a topic gets each of its messages: `telemetry` feeds `ingest-telemetry`, the archive and
the feature agent; `tesla_V` feeds `ingest-tesla` and the archive). Per batch (up to
`BATCH` messages or `BATCH_WITHIN_S` seconds, `streamapp.runtime.batching`)
`TelemetryValidator` dead-letters every invalid `telemetry` message and `TeslaNormaliser`
republishes each decodable Tesla record as `telemetry` keyed by VIN and dead-letters the
others, all through the batch's checkpoint (`streamapp.runtime.checkpoint`), which waits
until the brokers hold the sends and dead letters before it acks the batch.
"""

from __future__ import annotations

import faust
from faust.types import Message

from streamapp.contracts.codec import Invalid
from streamapp.contracts.telemetry import validate_telemetry
from streamapp.contracts.tesla import decode_tesla
from streamapp.ingest.metrics import MESSAGES, NORMALISED
from streamapp.runtime import drain
from streamapp.runtime.batching import batch_agent
from streamapp.runtime.checkpoint import Checkpoint
from streamapp.runtime.raw import raw_topic
from streamapp.settings import Settings

BATCH = 500
BATCH_WITHIN_S = 0.2


class TelemetryValidator:
    """The batches of `ingest-telemetry`: invalid messages to `telemetry.dlq`, all counted."""

    def __init__(self, settings: Settings, dlq: faust.TopicT) -> None:
        self.topic = settings.topic_telemetry
        self.dlq = dlq
        self.max_bytes = settings.max_payload_bytes

    async def handle(self, messages: list[Message], checkpoint: Checkpoint) -> None:
        valid = 0
        for message in messages:
            result = validate_telemetry(message.value, message.key, self.max_bytes)
            if isinstance(result, Invalid):
                await checkpoint.refuse(self.dlq, message, result.reason)
            else:
                valid += 1
        MESSAGES.labels(self.topic, "valid").inc(valid)
        MESSAGES.labels(self.topic, "invalid").inc(len(messages) - valid)

    def forget(self) -> None:
        """Nothing cached across batches."""


class TeslaNormaliser:
    """The batches of `ingest-tesla`: each record decoded to `telemetry` keyed by VIN, or
    dead-lettered to `tesla_V.dlq`."""

    def __init__(self, settings: Settings, output: faust.TopicT, dlq: faust.TopicT) -> None:
        self.topic = settings.topic_tesla
        self.output = output
        self.dlq = dlq
        self.max_bytes = settings.max_payload_bytes

    async def handle(self, messages: list[Message], checkpoint: Checkpoint) -> None:
        valid = 0
        for message in messages:
            result = decode_tesla(message.value, self.max_bytes)
            if isinstance(result, Invalid):
                await checkpoint.refuse(self.dlq, message, result.reason)
                continue
            valid += 1
            # The topic it came from, for the asset-class rules (`topic: tesla_V`).
            result.metadata["source_topic"] = self.topic
            await checkpoint.send(self.output, result.asset_id.encode(), result.to_bytes())
        NORMALISED.inc(valid)
        MESSAGES.labels(self.topic, "valid").inc(valid)
        MESSAGES.labels(self.topic, "invalid").inc(len(messages) - valid)

    def forget(self) -> None:
        """Nothing cached across batches."""


def register(app: faust.App, settings: Settings) -> tuple[TelemetryValidator, TeslaNormaliser]:
    """Attach `ingest-telemetry` and `ingest-tesla`, each on its own batch route."""
    telemetry_route = drain.route(app, (settings.topic_telemetry,))
    tesla_route = drain.route(app, (settings.topic_tesla,))
    validator = TelemetryValidator(
        settings, raw_topic(app, settings.dlq_topic(settings.topic_telemetry))
    )
    normaliser = TeslaNormaliser(
        settings,
        raw_topic(app, settings.topic_telemetry),
        raw_topic(app, settings.dlq_topic(settings.topic_tesla)),
    )

    batch_agent(
        app,
        "ingest-telemetry",
        telemetry_route,
        validator,
        BATCH,
        BATCH_WITHIN_S,
        help="Every invalid `telemetry` message goes to its DLQ; valid ones are counted.",
    )
    batch_agent(
        app,
        "ingest-tesla",
        tesla_route,
        normaliser,
        BATCH,
        BATCH_WITHIN_S,
        help="Tesla records become `telemetry` keyed by VIN; undecodable ones go to the DLQ.",
    )
    return validator, normaliser
