"""Raw-bytes topics and dead-letter sends, shared by every agent.

Agents read and write bytes and decode them with `streamapp.contracts`, so no Faust codec
stands between what a producer sent and the validator, and a refused message reaches its
`<topic>.dlq` byte for byte, shaped by `streamapp.contracts.deadletter`.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import faust
from aiokafka.errors import MessageSizeTooLargeError
from faust.exceptions import ProducerSendError
from prometheus_client import Counter

from streamapp.contracts.deadletter import DeadLetter

logger = logging.getLogger(__name__)

TOO_LARGE_NOTE = "over kafka_max_message_bytes; the source topic/partition/offset holds it"
DEAD_LETTERS = Counter(
    "streamapp_dead_letters_total",
    "Messages written to a dead-letter topic, by source topic and reason kind.",
    ["topic", "reason"],
)


def reason_kind(reason: str) -> str:
    """A bounded label for a free-text reason: its words before any detail."""
    head = reason.split(":", 1)[0]
    return " ".join(head.split()[:3])[:40]


def raw_topic(app: faust.App, name: str) -> faust.TopicT:
    """A topic read and written as raw bytes: agents decode, so nothing is lost in a codec."""
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


async def send_dead_letter(dlq_topic: faust.TopicT, letter: DeadLetter) -> None:
    """Count and publish a dead letter without waiting for its ack (Faust flushes on commit).

    A value larger than the producer may send (a broker allowing bigger messages on
    the input topic than `kafka_max_message_bytes`) would crash the agent on every
    redelivery; it goes to the DLQ without its value instead, the reason saying where
    the original bytes are (the source coordinates; the S3 archive for telemetry).
    """
    DEAD_LETTERS.labels(letter.topic, reason_kind(letter.reason)).inc()
    try:
        await _send(dlq_topic, letter)
    except ProducerSendError as exc:
        if not isinstance(exc.__cause__, MessageSizeTooLargeError):
            raise
        size = len(letter.value or b"")
        logger.warning(
            "dead letter too large for the producer: topic=%s partition=%d offset=%d bytes=%d",
            letter.topic,
            letter.partition,
            letter.offset,
            size,
        )
        reason = f"{letter.reason} [value of {size} bytes not copied: {TOO_LARGE_NOTE}]"
        await _send(dlq_topic, replace(letter, value=None, reason=reason))


async def _send(dlq_topic: faust.TopicT, letter: DeadLetter) -> None:
    await dlq_topic.send(
        key=letter.key,
        value=letter.value,
        headers=letter.headers(),
        key_serializer="raw",
        value_serializer="raw",
    )
