"""Dead letters: bad input is kept, byte for byte, with the reason it was refused.

The dead letter's Kafka key and value are the original bytes untouched; the reason
and the source coordinates travel in headers, so no re-encoding can alter what a
producer sent and `kafka-console-consumer --property print.headers=true` shows why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

REASON_HEADER = "dlq.reason"
SOURCE_TOPIC_HEADER = "dlq.source.topic"
SOURCE_PARTITION_HEADER = "dlq.source.partition"
SOURCE_OFFSET_HEADER = "dlq.source.offset"
SOURCE_TIMESTAMP_HEADER = "dlq.source.timestamp"
MAX_REASON_CHARS = 500


class SourceMessage(Protocol):
    """What a dead letter keeps of a consumed message (a Faust `Message` is one)."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp: float


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
    def from_message(cls, message: SourceMessage, reason: str) -> DeadLetter:
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
