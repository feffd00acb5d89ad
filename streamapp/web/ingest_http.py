"""HTTP ingestion (`POST /api/v1/telemetry`) for devices that cannot speak Kafka.

A request is all or nothing: if any record is invalid, none is produced and the
answer lists every refused record with its reason, so a client can fix its batch
and resend it without creating duplicates. Accepted records are produced keyed by
asset_id and acknowledged by the broker before the 202 is sent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from streamapp.contracts.codec import Invalid, decode_json
from streamapp.contracts.telemetry import Telemetry, validate_record


@dataclass(frozen=True, slots=True)
class Refusal:
    """An HTTP error answer: status and JSON body."""

    status: int
    body: dict[str, Any]


def parse_batch(
    body: bytes, max_body_bytes: int, max_record_bytes: int
) -> list[Telemetry] | Refusal:
    """One record or a JSON array of records, validated by the shared validator."""
    decoded = decode_json(body, max_body_bytes)
    if isinstance(decoded, Invalid):
        return Refusal(400, {"error": decoded.reason})
    items = decoded if isinstance(decoded, list) else [decoded]
    if not items:
        return Refusal(400, {"error": "empty array: send at least one record"})
    records: list[Telemetry] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        result = validate_record(item)
        if isinstance(result, Telemetry) and len(result.to_bytes()) > max_record_bytes:
            result = Invalid(f"record too large: more than {max_record_bytes} bytes")
        if isinstance(result, Invalid):
            errors.append({"index": index, "reason": result.reason})
        else:
            records.append(result)
    if errors:
        return Refusal(
            400,
            {
                "error": f"{len(errors)} of {len(items)} records invalid; none accepted",
                "received": len(items),
                "invalid": len(errors),
                "errors": errors,
            },
        )
    return records


async def read_limited(stream: Any, limit: int) -> bytes | None:
    """The request body, or None as soon as it exceeds `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def produce_records(topic: Any, records: list[Telemetry]) -> None:
    """Send every record keyed by asset_id and wait for the broker's acknowledgements."""
    pending = [
        await topic.send(key=record.asset_id.encode(), value=record.to_bytes())
        for record in records
    ]
    await asyncio.gather(*pending)
