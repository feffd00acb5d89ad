"""What every message contract shares: refusals, JSON, timestamps, finite numbers, ids.

Pure and never raising on bad input: a decoder returns `Invalid` with a reason, which is
what the dead-letter queue needs. The asset-id limit is defined here, once, for every
contract keyed by asset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

MAX_ASSET_ID_CHARS = 128
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
_MAX_NESTING = 32


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why a message was refused; the reason goes to the dead-letter queue."""

    reason: str


@lru_cache(maxsize=4096)
def format_ts(ts_ms: float) -> str:
    """ISO-8601 UTC with millisecond precision and a `Z`, as in BRIEF's examples.

    Cached: window bounds repeat across every asset of a fleet, and formatting
    through `datetime` costs more than the lookup.
    """
    moment = datetime.fromtimestamp(ts_ms / 1000.0, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


_MAX_TS_MS = 253402300800000  # 10000-01-01: the first instant ISO-8601 cannot write


def parse_ts(value: Any) -> float | str:
    """Epoch milliseconds from ISO-8601 text or an epoch-ms number; a reason on failure.

    Both forms share one range, 1970 to 9999, so every accepted time formats back to
    ISO-8601 text that this function accepts again (a normalised record stays valid).
    """
    if isinstance(value, bool):
        return "ts must be ISO-8601 text or epoch milliseconds, not a boolean"
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value < _MAX_TS_MS:
            return "ts epoch milliseconds out of range"
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return f"ts is not ISO-8601: {value[:40]!r}"
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        ts_ms = moment.timestamp() * 1000.0
        if not 0 <= ts_ms < _MAX_TS_MS:
            return f"ts out of range (1970 to 9999): {value[:40]!r}"
        return ts_ms
    return f"ts must be ISO-8601 text or epoch milliseconds, not {type(value).__name__}"


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return False


def encode_json(value: Any) -> bytes:
    """Compact JSON bytes (orjson), in an object of their own size.

    orjson's result keeps its whole working buffer (64 KiB for a 4 KB record): a worker
    holding thousands of emissions or stored predictions would hold 15 times their
    size. The copy costs far less than the encoding.
    """
    return bytes(memoryview(orjson.dumps(value)))


def decode_json(value: bytes | None, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> Any:
    """Strict UTF-8 JSON decoding; returns `Invalid` instead of raising.

    orjson is strict where the standard library is lenient: it refuses NaN/Infinity
    literals, numbers that overflow a double and unpaired UTF-16 surrogate escapes (an
    id holding one could never be a Kafka key), so every float it returns is finite,
    and it decodes several times faster, which the hot agents feel.
    """
    if value is None or len(value) == 0:
        return Invalid("empty value")
    if len(value) > max_bytes:
        return Invalid(f"payload too large: {len(value)} bytes > {max_bytes}")
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Invalid(_decode_failure(value, exc))
    # Nesting deeper than the limit needs more opening brackets than the limit; the
    # count (strings included) is far cheaper than walking every decoded value.
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogatepass")
    brackets = value.count(b"{") + value.count(b"[")
    if brackets > _MAX_NESTING and _depth_exceeds(decoded, _MAX_NESTING):
        return Invalid(f"JSON nested deeper than {_MAX_NESTING} levels")
    return decoded


def _decode_failure(value: bytes | str, exc: orjson.JSONDecodeError) -> str:
    """The dead-letter reason for text orjson refused: bad UTF-8, too deep, or bad JSON."""
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            bytes(value).decode("utf-8")
        except UnicodeDecodeError as bad:
            return f"invalid UTF-8 at byte {bad.start}"
    message = str(exc)
    if message.startswith("depth limit"):
        return f"JSON nested deeper than {_MAX_NESTING} levels"
    text = value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")
    if message.startswith("number is infinity"):
        return f"invalid JSON: the number at char {exc.pos} is not finite as a double"
    token = text[exc.pos : exc.pos + 9].lstrip("-")
    if token.startswith(("NaN", "Infinity")):
        return f"invalid JSON: non-finite number {token[:8]!r} at char {exc.pos}"
    return f"invalid JSON: {message}"


def finite_numbers(values: dict[str, Any], kind: str) -> dict[str, float] | Invalid:
    """A map of finite floats, or the first entry that is not a finite number."""
    clean: dict[str, float] = {}
    isfinite = math.isfinite
    for name, number in values.items():
        if type(number) is float:  # the common case first: JSON numbers with a fraction
            if not isfinite(number):
                return Invalid(f"{kind} {name[:64]!r} is not finite")
            clean[name] = number
            continue
        if isinstance(number, bool) or not isinstance(number, int | float):
            return Invalid(f"{kind} {name[:64]!r} is not a number")
        try:
            as_float = float(number)
        except OverflowError:
            as_float = math.inf
        if not isfinite(as_float):
            return Invalid(f"{kind} {name[:64]!r} is not finite")
        clean[name] = as_float
    return clean
