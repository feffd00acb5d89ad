"""HTTP ingestion (`POST /api/v1/telemetry`) for devices that cannot speak Kafka.

A request is all or nothing: if any record is invalid, none is produced and the
answer lists every refused record with its reason, so a client can fix its batch
and resend it without creating duplicates. Accepted records are produced keyed by
asset_id and acknowledged by the broker before the 202 is sent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from streamapp.contracts.codec import Invalid, decode_json
from streamapp.contracts.telemetry import Telemetry, validate_record
from streamapp.web.errors import ERRORS, error_body


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused batch: error code, reason and the per-record details of the answer."""

    error: str
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> int:
        return ERRORS[self.error]

    @property
    def body(self) -> dict[str, Any]:
        return error_body(self.error, self.detail, **self.extra)


def parse_batch(
    body: bytes, max_body_bytes: int, max_record_bytes: int
) -> list[Telemetry] | Refusal:
    """One record or a JSON array of records, validated by the shared validator."""
    decoded = decode_json(body, max_body_bytes)
    if isinstance(decoded, Invalid):
        return Refusal("invalid_request", decoded.reason)
    items = decoded if isinstance(decoded, list) else [decoded]
    if not items:
        return Refusal("invalid_request", "empty array: send at least one record")
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
            "invalid_records",
            f"{len(errors)} of {len(items)} records invalid; none accepted",
            {"received": len(items), "invalid": len(errors), "errors": errors},
        )
    return records


async def produce_records(topic: Any, records: list[Telemetry]) -> None:
    """Send every record keyed by asset_id and wait for the broker's acknowledgements."""
    pending = [
        await topic.send(key=record.asset_id.encode(), value=record.to_bytes())
        for record in records
    ]
    await asyncio.gather(*pending)
