"""Dead letters: bad input is kept, byte for byte, with the reason it was refused.

The dead letter's Kafka key and value are the original bytes untouched; the reason
and the source coordinates travel in headers, so no re-encoding can alter what a
producer sent and `kafka-console-consumer --property print.headers=true` shows why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import faust
from aiokafka.errors import MessageSizeTooLargeError
from faust.exceptions import ProducerSendError
from faust.types import Message

logger = logging.getLogger(__name__)

REASON_HEADER = "dlq.reason"
SOURCE_TOPIC_HEADER = "dlq.source.topic"
SOURCE_PARTITION_HEADER = "dlq.source.partition"
SOURCE_OFFSET_HEADER = "dlq.source.offset"
SOURCE_TIMESTAMP_HEADER = "dlq.source.timestamp"
MAX_REASON_CHARS = 500
TOO_LARGE_NOTE = "over kafka_max_message_bytes; the source topic/partition/offset holds it"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A refused message, as it will be written to `<topic>.dlq`."""

    key: bytes | None
    value: bytes | None
    reason: str
    topic: str
    partition: int
    offset: int
    timestamp: float | None

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers carrying the reason and source coordinates."""
        timestamp = "" if self.timestamp is None else repr(self.timestamp)
        return [
            (REASON_HEADER, self.reason[:MAX_REASON_CHARS].encode()),
            (SOURCE_TOPIC_HEADER, self.topic.encode()),
            (SOURCE_PARTITION_HEADER, str(self.partition).encode()),
            (SOURCE_OFFSET_HEADER, str(self.offset).encode()),
            (SOURCE_TIMESTAMP_HEADER, timestamp.encode()),
        ]

    @classmethod
    def from_event(cls, event: faust.EventT, reason: str) -> DeadLetter:
        """Capture the original bytes and coordinates of a Faust event."""
        return cls.from_message(event.message, reason)

    @classmethod
    def from_message(cls, message: Message, reason: str) -> DeadLetter:
        """Capture the original bytes and coordinates of a consumed message."""
        return cls(
            key=message.key,
            value=message.value,
            reason=reason,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            timestamp=message.timestamp,
        )


def parse_headers(headers: list[tuple[str, bytes]] | None) -> dict[str, str]:
    """Dead-letter headers as text, for `streamapp consume` and tests."""
    return {name: value.decode("utf-8", "replace") for name, value in headers or []}


async def send_dead_letter(dlq_topic: faust.TopicT, letter: DeadLetter) -> None:
    """Publish a dead letter without waiting for the broker's ack (Faust flushes on commit).

    A value larger than the producer may send (a broker allowing bigger messages on
    the input topic than `kafka_max_message_bytes`) would crash the agent on every
    redelivery; it goes to the DLQ without its value instead, the reason saying where
    the original bytes are (the source coordinates; the S3 archive for telemetry).
    """
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
