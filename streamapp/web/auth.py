"""The API key of mutating HTTP endpoints (telemetry ingestion, RUL training and activation).

One check for every endpoint: the key from the `X-Api-Key` header against setting
`API_KEY`, compared in constant time; no configured key refuses everything. Refusals
are logged with the endpoint, status, client address and reason, never with the key.
"""

from __future__ import annotations

import hmac
import logging

from streamapp.settings import Settings

logger = logging.getLogger(__name__)

API_KEY_HEADER = "X-Api-Key"


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


def log_refusal(endpoint: str, status: int, reason: str, remote: str | None) -> None:
    """Every refusal is logged, never with the key that was sent."""
    logger.warning(
        "event=http_refused endpoint=%s status=%d remote=%s reason=%r",
        endpoint,
        status,
        remote,
        reason,
    )
