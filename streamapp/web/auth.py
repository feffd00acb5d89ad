"""The API key of mutating HTTP endpoints (telemetry ingestion, RUL training and activation).

One check for every endpoint: the key from the `X-Api-Key` header against setting
`API_KEY`, compared in constant time; no configured key refuses everything. The same
comparison tells the rate limits who is calling: the key's holder, or else the peer
address. Neither the key nor its digest is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac

from streamapp.settings import Settings

API_KEY_HEADER = "X-Api-Key"
FORWARDED_FOR_HEADER = "X-Forwarded-For"


def key_is_valid(provided: str | None, expected: str | None) -> bool:
    """Constant-time comparison; no configured key means no key is valid."""
    if not expected or provided is None:
        return False
    return hmac.compare_digest(provided.encode(), expected.encode())


def key_refusal(provided: str | None, settings: Settings, what: str) -> str | None:
    """Why a request with header value `provided` is refused; None when the key is right."""
    expected = settings.api_key.get_secret_value() if settings.api_key else None
    if expected is None:
        return f"{what} is disabled: no API_KEY is configured"
    if not key_is_valid(provided, expected):
        return f"missing or invalid {API_KEY_HEADER}"
    return None


def client_identity(
    provided: str | None, peer: str | None, forwarded_for: str | None, settings: Settings
) -> str:
    """Whom a rate limit counts: the key's holder when the key is right, else an address.

    A wrong key counts as no key, so sending made-up keys cannot buy fresh buckets. The
    address is the peer's, or with `HTTP_TRUST_FORWARDED_FOR` the last X-Forwarded-For
    entry: the one the reverse proxy in front of the worker appended (earlier entries
    are whatever the client wrote).
    """
    expected = settings.api_key.get_secret_value() if settings.api_key else None
    if expected and key_is_valid(provided, expected):
        return "key:" + hashlib.sha256(expected.encode()).hexdigest()[:16]
    if settings.http_trust_forwarded_for and forwarded_for:
        last = forwarded_for.rsplit(",", 1)[-1].strip()
        if last:
            return f"addr:{last}"
    return f"addr:{peer or 'unknown'}"
