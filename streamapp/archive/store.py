"""S3 access of the archive with retries: exponential backoff, full jitter, forever.

Transient failures (timeouts, connection errors, 5xx, throttling) are retried without
limit, because giving up would mean either losing data or acknowledging what was not
written; the worker logs each failure and counts it, and keeps its other work going.
Other errors (access denied, missing bucket) are raised: retrying cannot fix them.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from streamapp import s3
from streamapp.archive import metrics
from streamapp.settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")

_TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "OperationAborted",
    }
)
_TRANSIENT_TYPES = (
    EndpointConnectionError,
    ConnectionClosedError,
    ConnectTimeoutError,
    ReadTimeoutError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    ConnectionError,
    OSError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same call may succeed."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 or status == 429 or error.get("Code") in _TRANSIENT_CODES
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    return isinstance(exc, BotoCoreError) and "connect" in type(exc).__name__.lower()


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0.0, min(cap, base * (2 ** min(attempt, 30))))


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime


class ArchiveStore:
    """The archive bucket: put, get, list and delete, each retried while transient."""

    def __init__(self, settings: Settings, base_delay: float = 0.1) -> None:
        self.settings = settings
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix.strip("/")
        self.base_delay = base_delay
        self.max_delay = settings.s3_retry_max_backoff
        self._rng = random.Random()
        self._context: Any = None
        self._client: Any = None

    async def __aenter__(self) -> ArchiveStore:
        self._context = s3.client(self.settings)
        self._client = await self._context.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._context.__aexit__(*exc)
        self._client = self._context = None

    async def _retry(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            try:
                return await call()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_transient(exc):
                    metrics.S3_ERRORS.labels(operation, "permanent").inc()
                    raise
                metrics.S3_ERRORS.labels(operation, "transient").inc()
                metrics.S3_RETRIES.labels(operation).inc()
                delay = backoff_delay(attempt, self.base_delay, self.max_delay, self._rng)
                logger.warning(
                    "event=s3_retry operation=%s attempt=%d error=%s detail=%r retry_in_s=%.2f",
                    operation,
                    attempt + 1,
                    type(exc).__name__,
                    str(exc)[:200],
                    delay,
                )
                attempt += 1
                await asyncio.sleep(delay)

    async def put(self, key: str, body: bytes, content_type: str) -> None:
        await self._retry(
            "put",
            lambda: self._client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType=content_type
            ),
        )

    async def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""

        async def call() -> bytes | None:
            try:
                response = await self._client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise
            async with response["Body"] as stream:
                return await stream.read()

        return await self._retry("get", call)

    async def list(self, prefix: str, start_after: str | None = None) -> list[ObjectInfo]:
        """Every object under a prefix, in key order."""

        async def call() -> list[ObjectInfo]:
            found: list[ObjectInfo] = []
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if start_after:
                kwargs["StartAfter"] = start_after
            while True:
                page = await self._client.list_objects_v2(**kwargs)
                found.extend(
                    ObjectInfo(item["Key"], item["Size"], item["LastModified"])
                    for item in page.get("Contents", ())
                )
                if not page.get("IsTruncated"):
                    return found
                kwargs["ContinuationToken"] = page["NextContinuationToken"]

        return await self._retry("list", call)

    async def delete(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": key} for key in keys[start : start + 1000]]

            def call(chunk: list[dict[str, str]] = chunk) -> Awaitable[Any]:
                return self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True}
                )

            await self._retry("delete", call)
