"""The base of every view of the worker's web server: one way to refuse, limit and read.

A view refuses by raising `ApiError(code, detail)`, from its own code or from the
helpers here: `check_key` (the API key), `check_rate` (the endpoint's rate limit) and
`json_body`/`read_body` (stopping at HTTP_MAX_BODY_BYTES); `refusing` turns the domain
exceptions of a call into their codes (one table per API). `on_request_error` answers
it, and Faust's own refusals, through `refuse`: the `{"error", "detail"}` body of
streamapp/web/errors.py and one log line. `ApiView.bound` gives the views of one
worker its settings and its rate limiter.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

from faust.web import Request, Response, View
from faust.web.exceptions import WebError

from streamapp.contracts.codec import Invalid, decode_json
from streamapp.settings import Settings
from streamapp.web.auth import API_KEY_HEADER, FORWARDED_FOR_HEADER, client_identity, key_refusal
from streamapp.web.errors import CODE_OF_STATUS, ERRORS, error_body, log_refusal, storage_failure
from streamapp.web.metrics import HTTP_RATE_LIMITED
from streamapp.web.ratelimit import RateLimiter, retry_after


class ApiError(WebError):
    """A refusal: the error code (its status follows), the reason, and extra body fields."""

    def __init__(
        self, error: str, detail: str, headers: Mapping[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail, code=ERRORS[error], **extra)
        self.error = error
        self.headers = dict(headers or {})


@contextmanager
def refusing(codes: Mapping[type[Exception], str], doing: str, endpoint: str) -> Iterator[None]:
    """Raise the `ApiError` of an exception met while `doing`: its code in `codes` (the
    first class it is an instance of), else for an `OSError` the code `storage_failure`
    gives; any other exception passes (the middleware answers it as a logged 500)."""
    try:
        yield
    except Exception as exc:
        code = next((code for kind, code in codes.items() if isinstance(exc, kind)), None)
        if code is not None:
            raise ApiError(code, str(exc)) from None
        if isinstance(exc, OSError):
            raise ApiError(*storage_failure(exc, doing, endpoint)) from None
        raise


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


class ApiView(View):
    """A Faust view whose every error, its own or Faust's, is `error_body` JSON."""

    settings: ClassVar[Settings]
    limiter: ClassVar[RateLimiter]

    @classmethod
    def bound(cls, settings: Settings, limiter: RateLimiter) -> type[ApiView]:
        """The base class of one worker's views."""
        return type(cls.__name__, (cls,), {"settings": settings, "limiter": limiter})

    def refuse(
        self,
        request: Request,
        error: str,
        detail: str,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> Response:
        """The error answer: status from the code, JSON body, one log line."""
        status = ERRORS[error]
        log_refusal(request.path, status, error, detail, request.remote)
        body = error_body(error, detail, **extra)
        return self.json(body, status=status, headers=dict(headers) if headers else None)

    async def on_request_error(self, request: Request, exc: WebError) -> Response:
        """An ApiError, or Faust's own refusal (a method the view lacks), answered."""
        if isinstance(exc, ApiError):
            return self.refuse(request, exc.error, exc.detail, exc.headers, **exc.extra_context)
        return self.refuse(request, CODE_OF_STATUS.get(int(exc.code), "internal_error"), exc.detail)

    def check_key(self, request: Request, what: str) -> None:
        """401 unless the request carries the API key."""
        reason = key_refusal(request.headers.get(API_KEY_HEADER), self.settings, what)
        if reason is not None:
            raise ApiError("unauthorized", reason)

    def check_rate(self, request: Request, endpoint: str) -> None:
        """429 with Retry-After when the caller has used up its bucket for `endpoint`."""
        headers = request.headers
        client = client_identity(
            headers.get(API_KEY_HEADER),
            request.remote,
            headers.get(FORWARDED_FOR_HEADER),
            self.settings,
        )
        wait = self.limiter.check(client, endpoint)
        if wait <= 0.0:
            return
        HTTP_RATE_LIMITED.labels(endpoint).inc()
        limit = self.limiter.limits[endpoint]
        seconds = retry_after(wait)
        raise ApiError(
            "rate_limited",
            f"rate limit of {endpoint}: {limit.burst} requests at once, {limit.rate:g} a second "
            f"on average; retry in {seconds} s",
            headers={"Retry-After": seconds},
        )

    async def read_body(self, request: Request) -> bytes:
        """The body; 413 as soon as it passes HTTP_MAX_BODY_BYTES (never read whole)."""
        limit = self.settings.http_max_body_bytes
        body = None
        if request.content_length is None or request.content_length <= limit:
            body = await read_limited(request.content, limit)
        if body is None:
            raise ApiError("payload_too_large", f"body larger than {limit} bytes")
        return body

    async def json_body(self, request: Request) -> Any:
        """The body decoded as strict JSON; 400 when it is not, 413 when too large."""
        decoded = decode_json(await self.read_body(request), self.settings.http_max_body_bytes)
        if isinstance(decoded, Invalid):
            raise ApiError("invalid_request", decoded.reason)
        return decoded
